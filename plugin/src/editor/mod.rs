//! GUI THREAD ONLY: the egui editor. It never runs inference: knob moves go
//! through the host (so they record as automation), model work (clip
//! imports, scene stores) goes to the worker as commands, and what it draws
//! comes from the worker's status and the audio thread's [`NowPlaying`].

mod export;
mod pattern_view;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::Sender;
use egui::{Color32, RichText};
use nice_plug::context::gui::GuiContext;
use nice_plug::editor::ResizeHint;
use nice_plug::editor::dpi::LogicalSize;
use nice_plug::prelude::*;
use nice_plug_egui::resizable_window::ResizableWindow;
use nice_plug_egui::widgets::ParamSlider;
use nice_plug_egui::{
    EguiEditor, EguiEditorState, EguiNiceSettings, Frame, NiceEguiApp, RepaintNotifier,
};

use crate::bridge::NowPlaying;
use crate::engine::worker::{EngineState, EngineStatus, StructureSource, WorkerCommand};
use crate::harmony::{Progression, TypedProgression};
use crate::knobs::AttributeKnob;
use crate::params::Phrase as PhraseSetting;
use crate::params::{Follow, LatentTrioParams, MAX_SEED, PartParams};
use crate::pattern::{MODEL_BARS, Part, Phrase, SONG_SLOTS, STEPS_PER_BAR};
use crate::stored::{SCENE_NAMES, StoredLatents};
use export::ExportChoice;
use pattern_view::ViewStyle;

/// Size the editor opens at, in logical points.
const DEFAULT_SIZE: (f32, f32) = (980.0, 780.0);
/// Space between the window's edges and its contents, in points.
const WINDOW_MARGIN: i8 = 8;
/// Smallest size it can be resized to.
const MIN_SIZE: (f32, f32) = (760.0, 560.0);
/// Width of the knob sliders.
const SLIDER_WIDTH: f32 = 120.0;
/// Colour of errors.
const ERROR: Color32 = Color32::from_rgb(255, 120, 110);

/// What the editor shares with the rest of the plugin.
pub struct EditorShared {
    /// Parameters (set through the host) and the stored latents.
    pub params: Arc<LatentTrioParams>,
    /// The worker's status and its decoded phrases.
    pub status: Arc<EngineStatus>,
    /// What the audio thread plays.
    pub now_playing: Arc<NowPlaying>,
    /// Requests to the worker.
    pub commands: Sender<WorkerCommand>,
}

/// The editor's state between frames.
pub struct EditorApp {
    shared: EditorShared,
    /// Set when the window opens; used to change parameters through the host.
    context: Option<GuiContext>,
    /// Per part: the .mid path typed for import.
    clip_paths: [String; 3],
    /// Where exported .mid files go, and how much of what to export.
    export: ExportChoice,
    /// What became of the last export, in words.
    export_notice: Option<Result<String, String>>,
    /// The chords being typed for Follow: Typed chords.
    typed_chords: String,
    /// Why the typed chords could not be used, if they could not.
    typed_problem: Option<String>,
}

/// Creates the editor.
pub fn create(shared: EditorShared) -> Option<EguiEditor<EditorApp>> {
    nice_plug_egui::create_egui_editor(
        EguiEditorState::from_size(LogicalSize::new(DEFAULT_SIZE.0, DEFAULT_SIZE.1), 1.0),
        RepaintNotifier::new(),
        EguiNiceSettings {
            title: "Latent Trio".into(),
            resize_hint: ResizeHint::RESIZABLE
                .with_min_logical_size(LogicalSize::new(MIN_SIZE.0, MIN_SIZE.1)),
            ..EguiNiceSettings::default()
        },
        EditorApp {
            shared,
            context: None,
            clip_paths: Default::default(),
            export: ExportChoice::default(),
            export_notice: None,
            typed_chords: String::new(),
            typed_problem: None,
        },
    )
}

impl NiceEguiApp for EditorApp {
    fn build(
        &mut self,
        _egui_ctx: egui::Context,
        nice_gui_ctx: GuiContext,
        _frame: &mut Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        self.context = Some(nice_gui_ctx);
        self.shared
            .status
            .window_open
            .store(true, Ordering::Relaxed);
        Ok(())
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut Frame) {
        let Some(context) = self.context.clone() else {
            return;
        };
        let setter = context.param_setter();
        // The playhead and the worker's status move without any input event.
        ui.ctx().request_repaint_after(Duration::from_millis(50));
        ResizableWindow::new("latent-trio")
            .min_size(egui::Vec2::new(MIN_SIZE.0, MIN_SIZE.1))
            .show(ui, |ui| {
                // One copy of the stored latents per frame, for every row.
                let stored = self.shared.params.stored.get();
                egui::ScrollArea::vertical().show(ui, |ui| {
                    // Keep the grids and knobs off the window's edges.
                    egui::Frame::new()
                        .inner_margin(egui::Margin::same(WINDOW_MARGIN))
                        .show(ui, |ui| self.contents(ui, &setter, &stored));
                });
            });
    }

    fn editor_closed(&mut self) {
        self.context = None;
        self.shared
            .status
            .window_open
            .store(false, Ordering::Relaxed);
    }
}

impl EditorApp {
    /// Everything inside the window's margin, top to bottom.
    fn contents(&mut self, ui: &mut egui::Ui, setter: &ParamSetter, stored: &StoredLatents) {
        self.header(ui, setter);
        ui.separator();
        self.harmony(ui, setter, stored);
        ui.separator();
        self.scenes(ui, setter, stored);
        ui.separator();
        if self.shared.params.phrase.value() == PhraseSetting::Song {
            self.song_row(ui, stored);
            ui.separator();
        }
        self.export_row(ui);
        ui.separator();
        let playing = self.phrase(self.shared.now_playing.playing());
        let waiting = self.phrase(self.shared.now_playing.waiting());
        ui.columns(3, |columns| {
            for (column, part) in columns.iter_mut().zip(Part::ALL) {
                self.part_strip(column, part, setter, stored, &playing, &waiting);
            }
        });
    }

    fn phrase(&self, id: Option<u64>) -> Option<Phrase> {
        id.and_then(|id| self.shared.status.phrase(id))
    }

    /// Title, status line, and the global controls.
    fn header(&mut self, ui: &mut egui::Ui, setter: &ParamSetter) {
        let params = &self.shared.params;
        ui.horizontal(|ui| {
            ui.heading("Latent Trio");
            ui.label(status_line(&self.shared.status));
        });
        let message = self.shared.status.message();
        if self.shared.status.state() == EngineState::NoRuntime {
            ui.colored_label(ERROR, format!("Silent: {message}"));
        } else if !message.is_empty() {
            ui.colored_label(ERROR, message);
        }
        let notice = self.shared.status.notice();
        if !notice.is_empty() {
            ui.label(notice);
        }
        ui.horizontal(|ui| {
            ui.label("Seed");
            ui.add(ParamSlider::for_param(&params.seed, setter).with_width(SLIDER_WIDTH));
            if ui
                .button("New seed")
                .on_hover_text("Jump to another seed")
                .clicked()
            {
                let next = (params.seed.value() + 1 + jump()) % (MAX_SEED + 1);
                setter.begin_set_parameter(&params.seed);
                setter.set_parameter(&params.seed, next);
                setter.end_set_parameter(&params.seed);
            }
            ui.label("Change");
            ui.add(ParamSlider::for_param(&params.change_every, setter).with_width(100.0));
            ui.label("Run on");
            ui.add(ParamSlider::for_param(&params.provider, setter).with_width(100.0));
            ui.label("Output");
            ui.add(ParamSlider::for_param(&params.output, setter).with_width(100.0));
            if params.output.value().only().is_some() {
                ui.add(ParamSlider::for_param(&params.output_channel_1, setter));
            }
        });
    }

    /// Key, what bass and melody follow (a preset progression, typed chords
    /// or chords played in), the chords with the one sounding lit, and the
    /// scale lock.
    fn harmony(&mut self, ui: &mut egui::Ui, setter: &ParamSetter, stored: &StoredLatents) {
        let params = &self.shared.params;
        let harmony = params.snapshot(0.0, None).harmony;
        let follow = params.follow.value();
        ui.horizontal(|ui| {
            ui.label(RichText::new("Harmony").strong());
            ui.label("Key");
            ui.add(ParamSlider::for_param(&params.key, setter).with_width(50.0));
            ui.label(harmony.key().mode.name());
            ui.label("Follow");
            ui.add(ParamSlider::for_param(&params.follow, setter).with_width(110.0));
            ui.label("Scale lock");
            ui.add(ParamSlider::for_param(&params.scale_lock, setter).with_width(60.0))
                .on_hover_text("Scale lock: bass and melody play only notes of the key (and of the chord sounding)");
            ui.separator();
            ui.label("Swing");
            ui.add(ParamSlider::for_param(&params.swing, setter).with_width(70.0))
                .on_hover_text("Every second 16th of every part later, up to a third of a 16th (100 %: triplets)");
        });
        ui.horizontal_wrapped(|ui| {
            ui.label("Phrase");
            ui.add(ParamSlider::for_param(&params.phrase, setter).with_width(90.0))
                .on_hover_text(
                    "How long the music runs before it repeats: as long as the progression, \
                     2 bars, or 4, 8 or 16 bars from the 16-bar models (the progression laid over them)",
                );
            let typed = stored.typed_progression.as_ref();
            // A reopened window (or a loaded project) shows what was typed.
            if self.typed_chords.is_empty()
                && let Some(typed) = typed
            {
                self.typed_chords.clone_from(&typed.chords);
            }
            let progression: Option<Progression> = match follow {
                Follow::Progression => {
                    ui.label("Progression");
                    ui.add(ParamSlider::for_param(&params.progression, setter).with_width(190.0));
                    Some(harmony.progression())
                }
                Follow::TypedChords => {
                    ui.add(
                        egui::TextEdit::singleline(&mut self.typed_chords)
                            .hint_text("Am F C G")
                            .desired_width(190.0),
                    );
                    if ui
                        .button("Use")
                        .on_hover_text(
                            "One chord a bar (\"Am F C G\"), or bars between | with one or two chords \
                             each (\"Am F | C G\"); up to 16 bars. The first chord names the key.",
                        )
                        .clicked()
                    {
                        let typed = TypedProgression {
                            chords: self.typed_chords.trim().to_string(),
                            key: None,
                        };
                        self.typed_problem = typed.read().err().map(|error| error.to_string());
                        if self.typed_problem.is_none() {
                            params
                                .stored
                                .update(|stored| stored.typed_progression = Some(typed));
                        }
                    }
                    match (&self.typed_problem, typed.map(TypedProgression::read)) {
                        (Some(problem), _) => {
                            ui.colored_label(ERROR, problem);
                            None
                        }
                        (None, Some(Ok((progression, key)))) => {
                            ui.label(format!("in {} {}", key.name(), key.mode.name()));
                            Some(progression)
                        }
                        _ => {
                            ui.weak("type chords and press Use (until then: the progression)");
                            None
                        }
                    }
                }
                Follow::PlayedChords => {
                    let played = self.shared.now_playing.played_chord();
                    if played.is_none() {
                        ui.weak("play a chord into the note input (until then: the progression)");
                    }
                    played.and_then(|chord| Progression::one_chord_a_bar(&[chord]).ok())
                }
            };
            if let Some(progression) = progression {
                chord_strip(ui, &progression, self.shared.now_playing.step());
            }
        });
    }

    /// Scene A and B, and the morph between them.
    fn scenes(&mut self, ui: &mut egui::Ui, setter: &ParamSetter, stored: &StoredLatents) {
        let params = &self.shared.params;
        ui.horizontal(|ui| {
            ui.label(RichText::new("Scenes").strong());
            for (slot, name) in SCENE_NAMES.into_iter().enumerate() {
                let label = if stored.scenes[slot].is_some() {
                    format!("Store {name} ✔")
                } else {
                    format!("Store {name}")
                };
                if ui
                    .button(label)
                    .on_hover_text(format!("Keep what every part plays now as scene {name}"))
                    .clicked()
                {
                    let _ = self.shared.commands.send(WorkerCommand::StoreScene(slot));
                }
            }
            ui.add(ParamSlider::for_param(&params.scenes_on, setter).with_width(60.0));
            ui.label("Morph");
            ui.add(ParamSlider::for_param(&params.morph, setter).with_width(SLIDER_WIDTH));
            ui.label("over");
            ui.add(ParamSlider::for_param(&params.morph_bars, setter).with_width(80.0));
            if ui.button("Clear").clicked() {
                params
                    .stored
                    .update(|stored| stored.scenes = Default::default());
            }
        });
        if params.scenes_on.value() && !stored.has_both_scenes() {
            ui.colored_label(
                ERROR,
                "Store scene A and B to morph; until then the knobs play.",
            );
        }
    }

    /// Song mode: the song's 32 slots with the playhead, each a lock the
    /// musician toggles, and the re-roll of the unlocked ones.
    fn song_row(&mut self, ui: &mut egui::Ui, stored: &StoredLatents) {
        let params = &self.shared.params;
        let playing_slot = self
            .shared
            .now_playing
            .step()
            .map(|step| step / (STEPS_PER_BAR * MODEL_BARS));
        ui.horizontal(|ui| {
            ui.label(RichText::new("Song").strong()).on_hover_text(
                "64 bars from the song priors, 2 bars a slot; click a slot to lock it",
            );
            ui.spacing_mut().item_spacing.x = 2.0;
            for slot in 0..SONG_SLOTS {
                let locked = stored.locked_slots[slot];
                let mut text = RichText::new(if locked { "■" } else { "□" }).monospace();
                if playing_slot == Some(slot) {
                    text = text.background_color(ui.visuals().selection.bg_fill);
                }
                let first_bar = slot * MODEL_BARS + 1;
                let hover = format!(
                    "Bars {first_bar}-{}: {}",
                    first_bar + 1,
                    if locked {
                        "locked (a re-roll keeps them)"
                    } else {
                        "a re-roll writes them again"
                    }
                );
                if ui
                    .add(egui::Button::new(text).frame(false))
                    .on_hover_text(hover)
                    .clicked()
                {
                    params
                        .stored
                        .update(|stored| stored.locked_slots[slot] = !locked);
                }
            }
            ui.spacing_mut().item_spacing.x = 8.0;
            if ui
                .button("Re-roll")
                .on_hover_text("Write the unlocked slots again, to fit between the locked ones")
                .clicked()
            {
                let _ = self.shared.commands.send(WorkerCommand::RerollSong);
            }
            let take = stored
                .song_of(params.seed.value() as u32)
                .map_or(0, |song| song.take);
            if take > 0 {
                ui.weak(format!("take {take}"));
            }
        });
    }

    /// Writing the phrase to a .mid file.
    fn export_row(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(RichText::new("MIDI out").strong());
            self.export.controls(ui);
            if ui.button("Export .mid").clicked() {
                let now = &self.shared.now_playing;
                // What plays next: the waiting phrase if there is one.
                let phrase = self
                    .phrase(now.waiting())
                    .or_else(|| self.phrase(now.playing()))
                    .or_else(|| self.shared.status.newest_phrase());
                self.export_notice = Some(match phrase {
                    Some(phrase) => self.export.write(&phrase, &self.shared.params, now),
                    None => Err("nothing decoded yet: wait for the models to load".into()),
                });
            }
        });
        match &self.export_notice {
            Some(Ok(message)) => {
                ui.label(message);
            }
            Some(Err(message)) => {
                ui.colored_label(ERROR, message);
            }
            None => {}
        }
    }

    fn part_strip(
        &mut self,
        ui: &mut egui::Ui,
        part: Part,
        setter: &ParamSetter,
        stored: &StoredLatents,
        playing: &Option<Phrase>,
        waiting: &Option<Phrase>,
    ) {
        let shared_params = self.shared.params.clone();
        let params = shared_params.part(part);
        ui.horizontal(|ui| {
            ui.heading(part.title());
            ui.add(ParamSlider::for_param(&params.enabled, setter).with_width(50.0));
            ui.label("Ch");
            ui.add(ParamSlider::for_param(&params.channel, setter).with_width(50.0));
        });
        if let Some(problem) = self.shared.status.part_problem(part) {
            ui.colored_label(ERROR, problem);
        }
        let height = if part == Part::Drums { 80.0 } else { 90.0 };
        let empty = crate::pattern::PartPhrase::default();
        let now = playing.as_ref().map_or(&empty, |p| p.part(part));
        let steps = playing.as_ref().map_or(0, Phrase::steps);
        ui.label("Now");
        pattern_view::show(
            ui,
            part,
            now,
            steps,
            self.shared.now_playing.step(),
            ViewStyle {
                height,
                note: Color32::from_rgb(110, 190, 255),
            },
        );
        match waiting {
            Some(next) => {
                ui.label("Next bar line");
                pattern_view::show(
                    ui,
                    part,
                    next.part(part),
                    next.steps(),
                    None,
                    ViewStyle {
                        height: height * 0.6,
                        note: Color32::from_rgb(150, 150, 170),
                    },
                );
            }
            None => {
                ui.weak("Next: the same phrase again");
            }
        }
        self.clip_row(ui, part, stored);
        knob_rows(ui, part, params, setter, &self.shared.status);
    }

    /// Importing a .mid clip as the part's starting point.
    fn clip_row(&mut self, ui: &mut egui::Ui, part: Part, stored: &StoredLatents) {
        ui.horizontal(|ui| {
            let path = &mut self.clip_paths[part.index()];
            ui.add(
                egui::TextEdit::singleline(path)
                    .hint_text("clip.mid path")
                    .desired_width(140.0),
            );
            let typed = path.trim();
            // In Song mode a clip becomes the slot playing now.
            let slot = (self.shared.params.phrase.value() == PhraseSetting::Song).then(|| {
                self.shared
                    .now_playing
                    .step()
                    .map_or(0, |step| step / (STEPS_PER_BAR * MODEL_BARS))
            });
            let hover = match slot {
                Some(_) => "Put your own clip (2 bars of 4/4) into the song's slot playing now, and lock it",
                None => "Start this part from your own clip (2 bars of 4/4)",
            };
            if ui
                .add_enabled(!typed.is_empty(), egui::Button::new("Import"))
                .on_hover_text(hover)
                .clicked()
            {
                let _ = self.shared.commands.send(WorkerCommand::ImportClip {
                    part,
                    path: expand_home(typed),
                    slot,
                });
            }
        });
        if part == Part::Melody {
            ui.horizontal(|ui| {
                let typed = self.clip_paths[part.index()].trim();
                if ui
                    .add_enabled(!typed.is_empty(), egui::Button::new("Follow structure"))
                    .on_hover_text(
                        "Keep this melody's material, but repeat and vary it where the clip above \
                         (up to 16 bars of 4/4) repeats and varies itself; heard in 4- to 16-bar phrases",
                    )
                    .clicked()
                {
                    let path = expand_home(typed);
                    let _ = self
                        .shared
                        .commands
                        .send(WorkerCommand::FollowStructure(StructureSource::Clip(path)));
                }
                for (scene, name) in SCENE_NAMES.into_iter().enumerate() {
                    let stored_scene = stored.scenes[scene].is_some();
                    if ui
                        .add_enabled(stored_scene, egui::Button::new(format!("of {name}")))
                        .on_hover_text(format!(
                            "Follow the structure of the melody stored in scene {name}"
                        ))
                        .clicked()
                    {
                        let source = StructureSource::Scene(scene);
                        let _ = self.shared.commands.send(WorkerCommand::FollowStructure(source));
                    }
                }
            });
        }
        if part == Part::Melody
            && let Some(structure) = &stored.structure
        {
            ui.horizontal(|ui| {
                ui.label(format!(
                    "Follows the structure of {} ({})",
                    structure.name, structure.summary
                ));
                if ui.small_button("Forget").clicked() {
                    self.shared
                        .params
                        .stored
                        .update(|stored| stored.structure = None);
                }
            });
        }
        if let Some(clip) = stored.clip(part) {
            ui.horizontal(|ui| {
                ui.label(format!("From {} ({})", clip.name, clip.summary));
                if ui.small_button("Forget").clicked() {
                    self.shared
                        .params
                        .stored
                        .update(|stored| stored.clips[part.index()] = None);
                }
            });
        }
    }
}

/// The progression bar by bar ("| Am | F | C G |"), with the chord sounding
/// at phrase step `playing` lit.
fn chord_strip(ui: &mut egui::Ui, progression: &Progression, playing: Option<usize>) {
    let sounding = playing.map(|step| {
        let half = step % STEPS_PER_BAR * 2 / STEPS_PER_BAR;
        (step / STEPS_PER_BAR % progression.bars(), half)
    });
    ui.spacing_mut().item_spacing.x = 4.0;
    for bar in 0..progression.bars() {
        ui.weak("|");
        let chords = progression.bar(bar);
        for (index, chord) in chords.iter().enumerate() {
            let text = RichText::new(chord.name()).monospace();
            let lit = sounding.is_some_and(|(now_bar, half)| {
                now_bar == bar && (chords.len() == 1 || half == index)
            });
            if lit {
                ui.label(
                    text.strong()
                        .background_color(ui.visuals().selection.bg_fill),
                );
            } else {
                ui.label(text);
            }
        }
    }
    ui.weak("|");
}

fn knob_rows(
    ui: &mut egui::Ui,
    part: Part,
    params: &PartParams,
    setter: &ParamSetter,
    status: &EngineStatus,
) {
    egui::Grid::new(("knobs", part.index()))
        .num_columns(2)
        .spacing([6.0, 2.0])
        .show(ui, |ui| {
            let mut row = |label: &str, param: &FloatParam, left_out: Option<String>| {
                ui.label(label);
                let slider = ParamSlider::for_param(param, setter).with_width(SLIDER_WIDTH);
                match left_out {
                    // Greyed: the model's direction for it is not reliable.
                    Some(why) => {
                        ui.add_enabled(false, slider).on_disabled_hover_text(why);
                    }
                    None => {
                        ui.add(slider);
                    }
                }
                ui.end_row();
            };
            row("Temperature", &params.temperature, None);
            row("Humanize", &params.humanize, status.humanize_problem(part));
            for (index, knob) in params.latent.iter().enumerate() {
                row(&format!("Latent {}", index + 1), &knob.value, None);
            }
            for (knob, label, param) in [
                (AttributeKnob::Density, "Density", &params.density),
                (
                    AttributeKnob::Syncopation,
                    "Syncopation",
                    &params.syncopation,
                ),
                (AttributeKnob::Register, "Register", &params.register),
            ] {
                if knob.applies_to(part) {
                    row(label, param, status.knob_left_out(part, knob));
                }
            }
        });
}

/// A typed path, with a leading `~/` meaning the home folder as in a shell.
fn expand_home(typed: &str) -> PathBuf {
    match (typed.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(typed),
    }
}

/// A jump that is different every click without a random-number crate.
fn jump() -> i32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos % 997) as i32
}

/// "ONNX Runtime 1.32.0 on CPU · 3 models · last decode 12 ms".
fn status_line(status: &EngineStatus) -> String {
    match status.state() {
        EngineState::Starting => "Loading models… (they load when the host first plays)".into(),
        EngineState::NoRuntime => "Silent (see below)".into(),
        EngineState::Ready => {
            let provider = status.provider().map_or("nothing", |p| p.label());
            let loaded = Part::ALL
                .iter()
                .filter(|&&part| status.part_problem(part).is_none())
                .count();
            let decode = status.last_decode_ms.load(Ordering::Relaxed);
            format!(
                "ONNX Runtime {} on {provider} · {loaded} of 3 models loaded · last decode {decode:.1} ms",
                status.runtime_version()
            )
        }
    }
}
