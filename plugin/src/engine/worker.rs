//! The worker thread: keeps the audio thread supplied with phrases for the
//! newest knobs, decoding each part only when its inputs changed and only
//! when it will be heard (see [`super::schedule`]), and publishes what it is
//! doing for the GUI.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use atomic_float::AtomicF32;
use crossbeam_channel::{Receiver, never, select};
use parking_lot::Mutex;

use super::latent::MONOTONIC_NEEDED;
use super::model::PartModel;
use super::runtime::{Provider, ProviderChoice};
use super::schedule::{Decision, DecodeCost, DecodeKind, DecodeSchedule};
use super::{Engine, PartInputs, RuntimeError};
use crate::bridge::{ChangeTiming, DecodeRequest, WorkerSide};
use crate::knobs::{ATTRIBUTE_KNOBS, AttributeKnob};
use crate::pattern::{MODEL_BARS, Part, Phrase};
use crate::stored::{Scene, SharedStoredLatents, StoredLatents, scene_name};

/// The worker thread's name, as tools that list threads show it (Linux keeps
/// 15 bytes of a thread name).
pub const WORKER_THREAD_NAME: &str = "trio-worker";

/// Decodes in this process since it started, for benchmarks and tests (the
/// plugin exports them as `latent_trio_decode_count`). Counted by every
/// instance's worker.
pub static DECODE_COUNTS: DecodeCounts = DecodeCounts::new();

/// Process-wide decode counters.
pub struct DecodeCounts {
    /// Per part: how often its model ran.
    pub part_runs: [AtomicU64; 3],
    /// Decodes by kind: immediate, preview, final, rest.
    pub kinds: [AtomicU64; 4],
}

impl DecodeCounts {
    const fn new() -> Self {
        DecodeCounts {
            part_runs: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            kinds: [
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
            ],
        }
    }

    /// Counter `which`: 0-2 the model runs of drums, bass, melody; 3-6 the
    /// immediate, preview, final and rest decodes. Unknown counters read 0.
    pub fn get(&self, which: usize) -> u64 {
        self.part_runs
            .iter()
            .chain(&self.kinds)
            .nth(which)
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    fn count(&self, kind: DecodeKind, decoded: [bool; 3]) {
        let index = match kind {
            DecodeKind::Immediate => 0,
            DecodeKind::Preview => 1,
            DecodeKind::Final => 2,
            DecodeKind::Rest => 3,
        };
        self.kinds[index].fetch_add(1, Ordering::Relaxed);
        for (runs, decoded) in self.part_runs.iter().zip(decoded) {
            if decoded {
                runs.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Decoded phrases kept for the GUI: the one playing, the one waiting for
/// its bar line, and a few that may still be in flight.
const PHRASES_SHOWN: usize = 8;

/// What the GUI asks of the worker (things that need the models).
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerCommand {
    /// Encode a .mid clip and use its latent as `part`'s base.
    ImportClip {
        /// The part the clip is for.
        part: Part,
        /// The .mid file.
        path: PathBuf,
        /// In Song mode: the song's slot the clip becomes (then locked).
        slot: Option<usize>,
    },
    /// Store the latents of the newest phrase as scene 0 (A) or 1 (B).
    StoreScene(usize),
    /// Song mode: write the song's unlocked slots again around the locked
    /// ones (its next take), and store it with the project.
    RerollSong,
    /// Make the melody follow the structure of a .mid clip or of a stored
    /// scene's melody (context transfer).
    FollowStructure(StructureSource),
}

/// Whose structure the melody follows.
#[derive(Debug, Clone, PartialEq)]
pub enum StructureSource {
    /// A .mid clip of up to 16 bars.
    Clip(PathBuf),
    /// The melody of scene 0 (A) or 1 (B).
    Scene(usize),
}

/// What the engine is doing, for the GUI and the host's status line. Written
/// by the worker; read by the GUI and tests (never by the audio thread, which
/// has no use for it).
#[derive(Default)]
pub struct EngineStatus {
    state: AtomicU8,
    provider: AtomicU8,
    /// Milliseconds the last decode took (only the parts whose inputs changed
    /// run their models).
    pub last_decode_ms: AtomicF32,
    /// Phrases decoded since the plugin was created.
    pub decodes: AtomicU64,
    /// Whether the window is open (GUI writes, worker reads): only then are
    /// preview decodes for its "Next" view worth their CPU.
    pub window_open: AtomicBool,
    /// Per part: why it is silent, if it is (worker writes, GUI reads).
    part_problems: Mutex<[Option<String>; 3]>,
    /// Per part: why its Humanize knob does nothing, if it does not (worker
    /// writes, GUI reads).
    humanize_problems: Mutex<[Option<String>; 3]>,
    /// Per part and attribute knob: the share of phrases its vector moved
    /// steadily, where that was too few for the knob to be used (worker
    /// writes, GUI reads).
    knobs_left_out: Mutex<[[Option<f32>; ATTRIBUTE_KNOBS]; 3]>,
    /// Why nothing plays at all, or a note about the provider.
    message: Mutex<String>,
    /// ONNX Runtime's version, once loaded.
    runtime_version: Mutex<String>,
    /// What became of the musician's last import or scene store, in words.
    notice: Mutex<String>,
    /// The newest decoded phrases, newest last, for the GUI to draw.
    phrases: Mutex<VecDeque<Box<Phrase>>>,
}

/// Per attribute knob of `model`'s part: the share of phrases its vector
/// moved steadily, where that was too few for the knob to be used.
fn unsteady_knobs(model: &PartModel) -> [Option<f32>; ATTRIBUTE_KNOBS] {
    AttributeKnob::ALL.map(|knob| {
        model
            .axes
            .attributes
            .iter()
            .find(|axis| axis.name == knob.axis_name() && axis.monotonic_share < MONOTONIC_NEEDED)
            .filter(|_| knob.applies_to(model.part))
            .map(|axis| axis.monotonic_share)
    })
}

/// Where the engine is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineState {
    /// Waiting for the first request, or loading.
    Starting,
    /// Models loaded (see the per-part problems for any that did not).
    Ready,
    /// ONNX Runtime is missing or unusable: the plugin stays silent.
    NoRuntime,
}

impl EngineStatus {
    /// The current state.
    pub fn state(&self) -> EngineState {
        match self.state.load(Ordering::Acquire) {
            1 => EngineState::Ready,
            2 => EngineState::NoRuntime,
            _ => EngineState::Starting,
        }
    }

    /// The provider the models run on, once loaded.
    pub fn provider(&self) -> Option<Provider> {
        match self.provider.load(Ordering::Acquire) {
            1 => Some(Provider::Cpu),
            2 => Some(Provider::Cuda),
            3 => Some(Provider::DirectMl),
            _ => None,
        }
    }

    /// A sentence about the engine as a whole (empty when all is well).
    pub fn message(&self) -> String {
        self.message.lock().clone()
    }

    /// Why `part`'s attribute knob `knob` does nothing, if it does not.
    pub fn knob_left_out(&self, part: Part, knob: AttributeKnob) -> Option<String> {
        let index = AttributeKnob::ALL.iter().position(|&k| k == knob)?;
        self.knobs_left_out.lock()[part.index()][index].map(|share| {
            format!(
                "Off for this model: its {} direction raised {} steadily for only {:.0} % of phrases",
                knob.axis_name(),
                knob.axis_name(),
                share * 100.0
            )
        })
    }

    /// Why `part` is silent, if it is.
    pub fn part_problem(&self, part: Part) -> Option<String> {
        self.part_problems.lock()[part.index()].clone()
    }

    /// Why `part`'s Humanize knob does nothing, if it does not.
    pub fn humanize_problem(&self, part: Part) -> Option<String> {
        self.humanize_problems.lock()[part.index()].clone()
    }

    /// ONNX Runtime's version (empty until loaded).
    pub fn runtime_version(&self) -> String {
        self.runtime_version.lock().clone()
    }

    /// The outcome of the last import or scene store (empty before any).
    pub fn notice(&self) -> String {
        self.notice.lock().clone()
    }

    /// A copy of the decoded phrase answering request `id`, if still kept.
    pub fn phrase(&self, id: u64) -> Option<Phrase> {
        // Newest first: the rest of a long phrase answers the same request.
        self.phrases
            .lock()
            .iter()
            .rev()
            .find(|phrase| phrase.request_id == id)
            .map(|phrase| Phrase::clone(phrase))
    }

    /// A copy of the newest decoded phrase.
    pub fn newest_phrase(&self) -> Option<Phrase> {
        self.phrases
            .lock()
            .back()
            .map(|phrase| Phrase::clone(phrase))
    }

    fn keep_phrase(&self, phrase: &Phrase) {
        let mut phrases = self.phrases.lock();
        let mut copy = if phrases.len() >= PHRASES_SHOWN {
            phrases.pop_front().unwrap_or_default()
        } else {
            Box::default()
        };
        Phrase::clone_from(&mut copy, phrase);
        phrases.push_back(copy);
    }

    fn publish_engine(&self, engine: &Result<Engine, RuntimeError>) {
        match engine {
            Ok(engine) => {
                *self.humanize_problems.lock() = Part::ALL.map(|part| {
                    engine.humanizers[part.index()].as_ref().err().map(|error| {
                        nice_plug::nice_log!(
                            "Latent Trio's {} plays on the grid: {error}",
                            part.name()
                        );
                        format!("No humanize model: {error}")
                    })
                });
                let mut problems = self.part_problems.lock();
                let mut left_out = self.knobs_left_out.lock();
                let mut notes = Vec::new();
                for part in Part::ALL {
                    left_out[part.index()] = Default::default();
                    problems[part.index()] = match &engine.parts[part.index()] {
                        Ok(model) => {
                            notes.extend(model.provider_note.clone());
                            left_out[part.index()] = unsteady_knobs(model);
                            None
                        }
                        Err(error) => {
                            nice_plug::nice_error!(
                                "Latent Trio's {} stays silent: {error}",
                                part.name()
                            );
                            Some(error.to_string())
                        }
                    };
                }
                notes.dedup();
                *self.message.lock() = notes.join("; ");
                if let Ok(runtime) = super::runtime::runtime() {
                    *self.runtime_version.lock() = runtime.version();
                }
                self.provider.store(
                    match engine.provider() {
                        None => 0,
                        Some(Provider::Cpu) => 1,
                        Some(Provider::Cuda) => 2,
                        Some(Provider::DirectMl) => 3,
                    },
                    Ordering::Release,
                );
                self.state.store(1, Ordering::Release);
            }
            Err(error) => {
                nice_plug::nice_error!("Latent Trio stays silent: {error}");
                *self.message.lock() = error.to_string();
                self.provider.store(0, Ordering::Release);
                self.state.store(2, Ordering::Release);
            }
        }
    }
}

/// What the worker needs besides its side of the bridge.
pub struct WorkerSettings {
    /// The models folder, if one was found.
    pub models: Option<PathBuf>,
    /// Reads the musician's provider choice (a host parameter).
    pub provider_choice: Box<dyn Fn() -> ProviderChoice + Send>,
    /// Shared status.
    pub status: Arc<EngineStatus>,
    /// Imported clips and scenes (saved with the project).
    pub stored: Arc<SharedStoredLatents>,
    /// The GUI's requests.
    pub commands: Receiver<WorkerCommand>,
}

/// Starts the worker. It loads the models on the first request (never while a
/// host is merely scanning plugins) and ends when the audio side is dropped.
pub fn spawn(side: WorkerSide, settings: WorkerSettings) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(WORKER_THREAD_NAME.into())
        .spawn(move || Worker::new(settings).run(side))
}

struct Worker {
    settings: WorkerSettings,
    /// The provider choice the engine was loaded for, and the engine.
    engine: Option<(ProviderChoice, Result<Engine, RuntimeError>)>,
    /// The newest request from the audio thread.
    latest: Option<DecodeRequest>,
    /// Id of the newest request a phrase was sent for.
    answered: Option<u64>,
    /// Per part: the inputs of the phrase last handed to the audio thread
    /// (`None`: none yet, or the part has no model).
    sent: [Option<PartInputs>; 3],
    /// The stored latents, re-read only when their revision changes.
    stored: (u32, StoredLatents),
    schedule: DecodeSchedule,
    cost: DecodeCost,
}

impl Worker {
    fn new(settings: WorkerSettings) -> Self {
        let stored = (settings.stored.revision(), settings.stored.get());
        Worker {
            settings,
            engine: None,
            latest: None,
            answered: None,
            sent: Default::default(),
            stored,
            schedule: DecodeSchedule::default(),
            cost: DecodeCost::default(),
        }
    }

    fn run(mut self, side: WorkerSide) {
        let mut commands = self.settings.commands.clone();
        loop {
            let wait = loop {
                match self.decide(&side) {
                    Decision::Decode(kind) => {
                        if !self.decode_and_send(kind, &side) {
                            return;
                        }
                    }
                    Decision::WaitUntil(at) => {
                        break at.saturating_duration_since(Instant::now());
                    }
                    // Nothing to do until a message comes.
                    Decision::Idle => break Duration::from_secs(3600),
                }
            };
            select! {
                recv(side.requests) -> request => {
                    let Ok(mut request) = request else { return };
                    // Knob sweeps queue many requests; only the newest matters.
                    while let Ok(newer) = side.requests.try_recv() {
                        request = newer;
                    }
                    self.latest = Some(request);
                }
                recv(commands) -> command => match command {
                    Ok(command) => self.obey(command),
                    // The plugin is going; its requests channel ends the loop.
                    Err(_) => commands = never(),
                },
                default(wait) => {}
            }
        }
    }

    /// Whether to decode now, and which kind of decode.
    fn decide(&mut self, side: &WorkerSide) -> Decision {
        let Some(request) = self.latest else {
            return Decision::Idle;
        };
        // An offline bounce waits for its phrase; and the very first phrase
        // (which also loads the models) is needed at once, since nothing
        // plays before it arrives.
        if request.offline || self.answered.is_none() {
            return if self.is_unanswered(&request) {
                Decision::Decode(DecodeKind::Immediate)
            } else {
                Decision::Idle
            };
        }
        // The rest of a long phrase whose first bar went out is due at once:
        // it is played from the bar after next.
        if let Some((_, Ok(engine))) = &self.engine
            && engine.has_unfinished_bars()
        {
            return Decision::Decode(DecodeKind::Rest);
        }
        // First as if every part were stale: while no decode could be due
        // (a sweep between two bar lines), the worker wakes for each new
        // snapshot without working out what changed. The estimate assumes
        // all three parts, so the final decode never starts too late.
        let previews = self.settings.status.window_open.load(Ordering::Relaxed);
        let due = self.schedule.decide(
            Instant::now(),
            true,
            side.clock.read(),
            self.cost.estimate(Part::ALL.len()),
            previews,
        );
        let Decision::Decode(kind) = due else {
            return due;
        };
        self.refresh_stored();
        let loaded = self.engine().is_ok();
        let Some((_, Ok(engine))) = self.engine.as_ref().filter(|_| loaded) else {
            // Silent, but answered once, so the GUI and tests see the state.
            return if self.is_unanswered(&request) {
                Decision::Decode(DecodeKind::Immediate)
            } else {
                Decision::Idle
            };
        };
        let stale = Part::ALL.into_iter().any(|part| {
            engine.part_inputs(part, &request.knobs, &self.stored.1) != self.sent[part.index()]
        });
        if stale {
            Decision::Decode(kind)
        } else {
            Decision::Idle
        }
    }

    /// Re-reads the stored latents if the GUI or a project load changed them.
    fn refresh_stored(&mut self) {
        let revision = self.settings.stored.revision();
        if revision != self.stored.0 {
            self.stored = (revision, self.settings.stored.get());
        }
    }

    /// Whether no phrase has been sent for `request` (nor a newer one).
    fn is_unanswered(&self, request: &DecodeRequest) -> bool {
        self.answered.is_none_or(|answered| request.id > answered)
    }

    /// Decodes the newest request and hands the phrase to the audio thread.
    /// Returns false when the audio side is gone.
    fn decode_and_send(&mut self, kind: DecodeKind, side: &WorkerSide) -> bool {
        let Some(request) = self.latest else {
            return true;
        };
        let timing = side.clock.read();
        let Ok(mut phrase) = side.spent.recv() else {
            return false;
        };
        self.answer(&request, kind, timing, &mut phrase);
        self.schedule.decoded(kind, Instant::now(), timing);
        self.answered = Some(request.id);
        side.phrases.send(phrase).is_ok()
    }

    /// The engine for the musician's current provider choice, loaded (again)
    /// if the choice changed.
    fn engine(&mut self) -> Result<&mut Engine, String> {
        let status = &self.settings.status;
        let choice = (self.settings.provider_choice)();
        if self
            .engine
            .as_ref()
            .is_none_or(|(loaded, _)| *loaded != choice)
        {
            let loaded = match &self.settings.models {
                Some(models) => Engine::load(models, choice),
                None => Err(RuntimeError::LibraryNotFound {
                    searched: Vec::new(),
                }),
            };
            if self.settings.models.is_none() {
                *status.message.lock() =
                    "no models folder found next to the plugin; set LATENT_TRIO_MODELS".into();
                status.state.store(2, Ordering::Release);
            } else {
                status.publish_engine(&loaded);
            }
            self.engine = Some((choice, loaded));
            // A new engine has decoded nothing yet.
            self.sent = Default::default();
        }
        match self.engine.as_mut().map(|(_, engine)| engine) {
            Some(Ok(engine)) => Ok(engine),
            _ => Err(status.message()),
        }
    }

    /// Decodes `request` into `phrase`, to be heard from the change point
    /// of `timing` (from its start while stopped); a silent phrase if nothing
    /// can play. A part whose decode fails keeps its last good notes, and the
    /// window and the log say why.
    fn answer(
        &mut self,
        request: &DecodeRequest,
        kind: DecodeKind,
        timing: Option<ChangeTiming>,
        phrase: &mut Phrase,
    ) {
        phrase.request_id = request.id;
        self.refresh_stored();
        let stored = std::mem::take(&mut self.stored.1);
        let status = self.settings.status.clone();
        match self.engine() {
            Ok(engine) => {
                // Bars of the phrase before its change point have been heard;
                // of a long phrase, only the bar at the change point is
                // needed before it (the rest follows at once, as `Rest`).
                let change_bar = timing.map(|timing| timing.change_song_bar);
                let report = match (kind, change_bar) {
                    (DecodeKind::Final, Some(bar)) => {
                        engine.decode_first_bars(&request.knobs, &stored, phrase, bar, 1)
                    }
                    _ => engine.decode(&request.knobs, &stored, phrase, change_bar),
                };
                phrase.completes_previous = report.completes_previous;
                let times = engine.part_decode_time;
                let mut fallbacks =
                    Part::ALL.map(|part| engine.long_model_problem(part, &request.knobs));
                // The knobs that work are those of the model that played.
                let unsteady: [Option<_>; 3] = std::array::from_fn(|index| {
                    let inputs = report.inputs[index].as_ref()?;
                    engine.model_of(index, inputs).map(unsteady_knobs)
                });
                status
                    .last_decode_ms
                    .store(engine.last_decode.as_secs_f32() * 1000.0, Ordering::Relaxed);
                for part in Part::ALL {
                    let index = part.index();
                    if !report.decoded[index] {
                        continue;
                    }
                    let fallback = fallbacks[index].take();
                    // A part's first run after loading includes ONNX
                    // Runtime's one-time set-up: it says nothing about the
                    // next decodes and would start every final decode early.
                    if self.sent[index].is_some() {
                        self.cost.observe(times[index]);
                    }
                    let mut problems = status.part_problems.lock();
                    problems[index] = report.errors[index]
                        .as_ref()
                        .map(|error| format!("{error}; it plays its last good phrase"))
                        .or(fallback);
                    if let Some(problem) = &problems[index] {
                        nice_plug::nice_error!("Latent Trio's {}: {problem}", part.name());
                    }
                }
                let mut left_out = status.knobs_left_out.lock();
                for (left_out, unsteady) in left_out.iter_mut().zip(unsteady) {
                    if let Some(unsteady) = unsteady {
                        *left_out = unsteady;
                    }
                }
                drop(left_out);
                DECODE_COUNTS.count(kind, report.decoded);
                status.decodes.fetch_add(1, Ordering::Relaxed);
                // Inputs that failed count as sent too: a broken model is
                // not retried on every wake, only when its inputs change.
                self.sent = report.inputs;
            }
            Err(_) => {
                phrase.completes_previous = false;
                // Silent, but answered: an offline bounce waiting for this
                // phrase must not wait in vain.
                for part in Part::ALL {
                    phrase.part_mut(part).clear();
                }
            }
        }
        self.stored.1 = stored;
        status.keep_phrase(phrase);
    }

    fn obey(&mut self, command: WorkerCommand) {
        let notice = match command {
            WorkerCommand::ImportClip { part, path, slot } => self.import_clip(part, &path, slot),
            WorkerCommand::StoreScene(slot) => self.store_scene(slot),
            WorkerCommand::RerollSong => self.reroll_song(),
            WorkerCommand::FollowStructure(source) => self.follow_structure(&source),
        };
        let notice = notice.unwrap_or_else(|error| error);
        nice_plug::nice_log!("Latent Trio: {notice}");
        *self.settings.status.notice.lock() = notice;
    }

    fn import_clip(
        &mut self,
        part: Part,
        path: &std::path::Path,
        slot: Option<usize>,
    ) -> Result<String, String> {
        let not_imported =
            |error: &dyn std::fmt::Display| format!("{} clip not imported: {error}", part.title());
        let knobs = self.latest.map(|request| request.knobs);
        self.refresh_stored();
        let stored = self.stored.1.clone();
        let engine = self.engine()?;
        let clip = engine
            .import_clip(part, path)
            .map_err(|error| not_imported(&error))?;
        if let (Some(slot), Some(knobs)) = (slot, knobs) {
            let song = engine
                .song_with_clip(&knobs, &stored, part, slot, &clip.latent)
                .map_err(|error| not_imported(&error))?;
            if let Some(song) = song {
                self.settings.stored.update(|stored| {
                    stored.song = Some(song);
                    stored.locked_slots[slot] = true;
                });
                return Ok(format!(
                    "{} plays {} in bars {}-{} of the song (locked): {}",
                    part.title(),
                    clip.name,
                    slot * MODEL_BARS + 1,
                    slot * MODEL_BARS + MODEL_BARS,
                    clip.summary
                ));
            }
        }
        let notice = format!(
            "{} now plays from {}: {}",
            part.title(),
            clip.name,
            clip.summary
        );
        self.settings
            .stored
            .update(|stored| stored.clips[part.index()] = Some(clip));
        Ok(notice)
    }

    fn follow_structure(&mut self, source: &StructureSource) -> Result<String, String> {
        let knobs = self
            .latest
            .map(|request| request.knobs)
            .ok_or("nothing to follow yet: no phrase has been asked for")?;
        self.refresh_stored();
        let stored = self.stored.1.clone();
        let engine = self.engine()?;
        let structure = match source {
            StructureSource::Clip(path) => engine.follow_structure(path, &knobs, &stored),
            StructureSource::Scene(scene) => engine.follow_scene_structure(*scene, &knobs, &stored),
        }
        .map_err(|error| format!("structure not followed: {error}"))?;
        let mut notice = format!(
            "Melody follows the structure of {}: {}",
            structure.name, structure.summary
        );
        if !knobs.phrase.wants_long_models() {
            notice.push_str(" (heard in 4- to 16-bar phrases)");
        }
        self.settings
            .stored
            .update(|stored| stored.structure = Some(structure));
        Ok(notice)
    }

    fn reroll_song(&mut self) -> Result<String, String> {
        let knobs = self
            .latest
            .map(|request| request.knobs)
            .ok_or("nothing to re-roll yet: no song has been written")?;
        self.refresh_stored();
        let stored = self.stored.1.clone();
        let engine = self.engine()?;
        let locked = stored.locked_slots;
        let song = engine
            .reroll_song(&knobs, &stored, &locked)
            .map_err(|error| format!("song not re-rolled: {error}"))?;
        let kept = locked.iter().filter(|&&locked| locked).count();
        let take = song.take;
        self.settings
            .stored
            .update(|stored| stored.song = Some(song));
        Ok(format!(
            "Song re-rolled (take {take}): {} slots new, {kept} locked slots kept",
            locked.len() - kept
        ))
    }

    fn store_scene(&mut self, slot: usize) -> Result<String, String> {
        let engine = self.engine()?;
        let (latents, long) = (engine.last_latents.clone(), engine.last_latents_long);
        if latents.iter().all(Vec::is_empty) {
            return Err("nothing to store yet: no phrase has been decoded".into());
        }
        let name = scene_name(slot);
        self.settings.stored.update(|stored| {
            if let Some(scene) = stored.scenes.get_mut(slot) {
                *scene = Some(Scene { latents, long });
            }
        });
        Ok(format!("Scene {name} stored"))
    }
}
