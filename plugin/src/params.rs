//! Every host-visible parameter. The ids are part of saved projects and
//! automation lanes: never rename one.
//!
//! Ids: `seed`, `new_seed`, `change_every`, `phrase`, `provider`, `bypass`, `scenes`,
//! `morph`, `morph_bars`, `output`, `output_channel_1`, `key`, `progression`,
//! `scale_lock`, `follow`, `swing`, and per part
//! (`drums_`, `bass_`, `melody_` prefixes) `on`, `channel`, `temperature`,
//! `latent_1`..`latent_8`, `density`, `syncopation`, `register`, `humanize`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use nice_plug::prelude::*;

use crate::engine::runtime::ProviderChoice;
use crate::harmony::{Chord, HarmonySettings, PRESETS};
use crate::knobs::{
    ATTRIBUTE_RANGE, AttributeKnob, KnobSnapshot, PRINCIPAL_RANGE, PartKnobs, PhraseLength,
};
use crate::pattern::Part;
use crate::stored::SharedStoredLatents;

/// Highest seed a musician can dial in.
pub const MAX_SEED: i32 = 9999;
/// Highest sampling temperature.
pub const MAX_TEMPERATURE: f32 = 1.5;
/// Longest morph glide, in bars.
pub const MAX_MORPH_BARS: i32 = 32;
/// How the Key parameter shows each tonic.
const NOTE_NAMES: [&str; 12] = [
    "C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B",
];

/// How often new material may take over.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeEvery {
    /// On the next bar line.
    #[id = "bar"]
    #[name = "Next bar"]
    Bar,
    /// On the next bar line whose number is a multiple of 2.
    #[id = "2_bars"]
    #[name = "Every 2 bars"]
    TwoBars,
    /// On the next bar line whose number is a multiple of 4.
    #[id = "4_bars"]
    #[name = "Every 4 bars"]
    FourBars,
}

impl ChangeEvery {
    /// Bars between possible changes.
    pub fn bars(self) -> u32 {
        match self {
            ChangeEvery::Bar => 1,
            ChangeEvery::TwoBars => 2,
            ChangeEvery::FourBars => 4,
        }
    }
}

/// How long the phrase is (see [`PhraseLength`]).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phrase {
    /// As long as the progression, from the 2-bar models.
    #[id = "progression"]
    #[name = "Progression"]
    Progression,
    /// 2 bars, from the 2-bar models.
    #[id = "2_bars"]
    #[name = "2 bars"]
    TwoBars,
    /// The first 4 bars of the 16-bar models.
    #[id = "4_bars"]
    #[name = "4 bars"]
    FourBars,
    /// The first 8 bars of the 16-bar models.
    #[id = "8_bars"]
    #[name = "8 bars"]
    EightBars,
    /// The 16-bar models' whole phrase.
    #[id = "16_bars"]
    #[name = "16 bars"]
    SixteenBars,
    /// A 64-bar song from the song priors (Song mode).
    #[id = "song"]
    #[name = "Song (64 bars)"]
    Song,
}

impl From<Phrase> for PhraseLength {
    fn from(value: Phrase) -> Self {
        match value {
            Phrase::Progression => PhraseLength::Progression,
            Phrase::TwoBars => PhraseLength::Bars(2),
            Phrase::FourBars => PhraseLength::Bars(4),
            Phrase::EightBars => PhraseLength::Bars(8),
            Phrase::SixteenBars => PhraseLength::Bars(16),
            Phrase::Song => PhraseLength::Song,
        }
    }
}

/// Which parts this instance sends. Ableton Live passes a plugin's MIDI on
/// to other tracks on one channel only, so a Live set runs one instance per
/// part (the same seed and knobs play the same song in each).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Every part on its own channel.
    #[id = "all"]
    #[name = "All parts"]
    AllParts,
    /// Only the drums.
    #[id = "drums"]
    #[name = "Drums only"]
    Drums,
    /// Only the bass.
    #[id = "bass"]
    #[name = "Bass only"]
    Bass,
    /// Only the melody.
    #[id = "melody"]
    #[name = "Melody only"]
    Melody,
}

impl Output {
    /// The one part sent, if only one is.
    pub fn only(self) -> Option<Part> {
        match self {
            Output::AllParts => None,
            Output::Drums => Some(Part::Drums),
            Output::Bass => Some(Part::Bass),
            Output::Melody => Some(Part::Melody),
        }
    }
}

/// What bass and melody follow.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// The Progression parameter.
    #[id = "progression"]
    #[name = "Progression"]
    Progression,
    /// The progression typed in the window (saved with the project).
    #[id = "typed"]
    #[name = "Typed chords"]
    TypedChords,
    /// The chord held on the note input (a keyboard, a chord track).
    #[id = "played"]
    #[name = "Played chords"]
    PlayedChords,
}

/// Where the models run (the musician's request; the GUI shows what runs).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionProvider {
    /// The fastest available.
    #[id = "auto"]
    #[name = "Auto"]
    Auto,
    /// CPU only.
    #[id = "cpu"]
    #[name = "CPU"]
    Cpu,
    /// NVIDIA CUDA.
    #[id = "cuda"]
    #[name = "CUDA"]
    Cuda,
    /// DirectML (Windows).
    #[id = "directml"]
    #[name = "DirectML"]
    DirectMl,
}

impl From<ExecutionProvider> for ProviderChoice {
    fn from(value: ExecutionProvider) -> Self {
        match value {
            ExecutionProvider::Auto => ProviderChoice::Auto,
            ExecutionProvider::Cpu => ProviderChoice::Cpu,
            ExecutionProvider::Cuda => ProviderChoice::Cuda,
            ExecutionProvider::DirectMl => ProviderChoice::DirectMl,
        }
    }
}

/// All parameters. Host, GUI and audio thread share them through atomics.
#[derive(Params)]
pub struct LatentTrioParams {
    /// How many times "New seed" was pressed: part of the decode seed, saved
    /// with the project so that a rolled seed plays back identically.
    #[persist = "seed-rolls"]
    pub seed_rolls: Arc<AtomicU32>,
    /// Whether "New seed" was on in the last block the audio thread played
    /// (a press is its rising edge). Saved next to the parameter, so a
    /// project saved with the trigger held does not roll again on load.
    #[persist = "new-seed-held"]
    pub new_seed_held: Arc<AtomicBool>,
    /// The seed: the base latent and the sampling noise of every part.
    #[id = "seed"]
    pub seed: IntParam,
    /// Rolls a fresh seed when switched on (a trigger for controllers).
    #[id = "new_seed"]
    pub new_seed: BoolParam,
    /// When new material may take over.
    #[id = "change_every"]
    pub change_every: EnumParam<ChangeEvery>,
    /// How long the phrase is, and which models write it.
    #[id = "phrase"]
    pub phrase: EnumParam<Phrase>,
    /// Where the models run.
    #[id = "provider"]
    pub provider: EnumParam<ExecutionProvider>,
    /// Silences the plugin and ends every note.
    #[id = "bypass"]
    pub bypass: BoolParam,
    /// Imported clips and the A/B scenes, saved with the project.
    #[persist = "stored-latents"]
    pub stored: Arc<SharedStoredLatents>,
    /// Play the morph between scene A and B instead of the seed and knobs.
    #[id = "scenes"]
    pub scenes_on: BoolParam,
    /// Where between scene A (0 %) and B (100 %) the parts play.
    #[id = "morph"]
    pub morph: FloatParam,
    /// Bars a morph takes to reach the Morph knob, one step per bar; 0 jumps
    /// on the next bar line.
    #[id = "morph_bars"]
    pub morph_bars: IntParam,
    /// Which parts this instance sends (one part per instance for Live).
    #[id = "output"]
    pub output: EnumParam<Output>,
    /// With one part sent: on MIDI channel 1 instead of the part's channel.
    #[id = "output_channel_1"]
    pub output_channel_1: BoolParam,
    /// The key's tonic, 0 = C; bass and melody play in it.
    #[id = "key"]
    pub key: IntParam,
    /// Which chord progression bass and melody follow (an index into
    /// [`PRESETS`], shown by name); a change is heard on the next bar line.
    #[id = "progression"]
    pub progression: IntParam,
    /// Keeps bass and melody in the key's scale at any temperature.
    #[id = "scale_lock"]
    pub scale_lock: BoolParam,
    /// Whether bass and melody follow the progression or the chords played
    /// into the note input.
    #[id = "follow"]
    pub follow: EnumParam<Follow>,
    /// How late every second 16th comes, up to a third of a 16th (100 %: a
    /// triplet feel); all parts.
    #[id = "swing"]
    pub swing: FloatParam,
    /// Drums.
    #[nested(id_prefix = "drums", group = "Drums")]
    pub drums: PartParams,
    /// Bass.
    #[nested(id_prefix = "bass", group = "Bass")]
    pub bass: PartParams,
    /// Melody.
    #[nested(id_prefix = "melody", group = "Melody")]
    pub melody: PartParams,
}

/// One latent knob (an array element, so the ids are `latent_1`..`latent_8`).
#[derive(Params)]
pub struct LatentKnobParam {
    /// Offset along one principal axis, in standard deviations.
    #[id = "latent"]
    pub value: FloatParam,
}

/// The parameters of one part.
#[derive(Params)]
pub struct PartParams {
    /// Whether the part plays (takes effect on the next bar line).
    #[id = "on"]
    pub enabled: BoolParam,
    /// MIDI channel of the part's notes, 1-16.
    #[id = "channel"]
    pub channel: IntParam,
    /// Sampling temperature.
    #[id = "temperature"]
    pub temperature: FloatParam,
    /// The eight principal-axis knobs.
    #[nested(array)]
    pub latent: [LatentKnobParam; crate::knobs::PRINCIPAL_KNOBS],
    /// More or fewer notes.
    #[id = "density"]
    pub density: FloatParam,
    /// More or fewer off-beat notes.
    #[id = "syncopation"]
    pub syncopation: FloatParam,
    /// Higher or lower notes (bass and melody; hidden for drums).
    #[id = "register"]
    pub register: FloatParam,
    /// 0 %: every note on the grid at the fixed velocities; 100 %: the
    /// velocities and timing the humanize model gives the pattern.
    #[id = "humanize"]
    pub humanize: FloatParam,
}

/// A 0-100 % knob.
fn share(name: String) -> FloatParam {
    FloatParam::new(name, 0.0, FloatRange::Linear { min: 0.0, max: 1.0 })
        .with_step_size(0.01)
        .with_unit(" %")
        .with_value_to_string(formatters::v2s_f32_percentage(0))
        .with_string_to_value(formatters::s2v_f32_percentage())
}

/// "+1.25", "-0.50", and "+0.00" for anything that rounds to zero: a value
/// just below zero must not show as "-0.00", which reads back as 0 and then
/// shows as "+0.00".
fn signed(decimals: usize) -> Arc<dyn Fn(f32) -> String + Send + Sync> {
    let scale = 10f32.powi(decimals as i32);
    Arc::new(move |value| {
        let rounded = (value * scale).round() / scale;
        // Adding 0.0 turns -0.0 into +0.0.
        format!("{:+.decimals$}", rounded + 0.0)
    })
}

fn knob(name: String, range: f32) -> FloatParam {
    FloatParam::new(
        name,
        0.0,
        FloatRange::Linear {
            min: -range,
            max: range,
        },
    )
    .with_step_size(0.01)
    .with_value_to_string(signed(2))
    .with_string_to_value(parse_knob(0.01))
}

/// Parses a typed knob value ("+1.5", "-2 σ"); the host clamps it to range.
type Parser = Arc<dyn Fn(&str) -> Option<f32> + Send + Sync>;

fn parse_knob(step: f32) -> Parser {
    Arc::new(move |text| {
        let value: f32 = text
            .trim()
            .trim_end_matches(['σ', '×', ' '])
            .trim()
            .parse()
            .ok()?;
        Some((value / step).round() * step)
    })
}

impl PartParams {
    fn new(part: Part) -> Self {
        let title = part.title();
        let default_channel = i32::from(part.default_channel()) + 1;
        let attribute = |knob: AttributeKnob, label: &str| {
            let param = self::knob(format!("{title} {label}"), ATTRIBUTE_RANGE).with_unit(" ×");
            if knob.applies_to(part) {
                param
            } else {
                param.hide()
            }
        };
        PartParams {
            enabled: BoolParam::new(format!("{title} On"), true),
            channel: IntParam::new(
                format!("{title} Channel"),
                default_channel,
                IntRange::Linear { min: 1, max: 16 },
            ),
            temperature: FloatParam::new(
                format!("{title} Temperature"),
                0.5,
                FloatRange::Linear {
                    min: 0.0,
                    max: MAX_TEMPERATURE,
                },
            )
            .with_step_size(0.01)
            .with_value_to_string(formatters::v2s_f32_rounded(2)),
            latent: std::array::from_fn(|index| LatentKnobParam {
                value: knob(format!("{title} Latent {}", index + 1), PRINCIPAL_RANGE)
                    .with_unit(" σ"),
            }),
            density: attribute(AttributeKnob::Density, "Density"),
            syncopation: attribute(AttributeKnob::Syncopation, "Syncopation"),
            register: attribute(AttributeKnob::Register, "Register"),
            humanize: share(format!("{title} Humanize")),
        }
    }

    /// The part's MIDI channel, 0-based as on the wire.
    pub fn midi_channel(&self) -> u8 {
        (self.channel.value() - 1).clamp(0, 15) as u8
    }

    /// The decode-relevant settings as plain values.
    pub fn knobs(&self) -> PartKnobs {
        PartKnobs {
            enabled: self.enabled.value(),
            temperature: self.temperature.value(),
            principal: std::array::from_fn(|index| self.latent[index].value.value()),
            attributes: [
                self.density.value(),
                self.syncopation.value(),
                self.register.value(),
            ],
            humanize: self.humanize.value(),
        }
    }
}

impl Default for LatentTrioParams {
    fn default() -> Self {
        LatentTrioParams {
            seed_rolls: Arc::new(AtomicU32::new(0)),
            new_seed_held: Arc::new(AtomicBool::new(false)),
            seed: IntParam::new(
                "Seed",
                1,
                IntRange::Linear {
                    min: 0,
                    max: MAX_SEED,
                },
            ),
            new_seed: BoolParam::new("New Seed", false),
            change_every: EnumParam::new("Change", ChangeEvery::Bar),
            phrase: EnumParam::new("Phrase", Phrase::Progression),
            provider: EnumParam::new("Run Models On", ExecutionProvider::Auto).non_automatable(),
            bypass: BoolParam::new("Bypass", false).make_bypass(),
            stored: Arc::default(),
            scenes_on: BoolParam::new("Play Scenes", false),
            morph: FloatParam::new("Morph A-B", 0.0, FloatRange::Linear { min: 0.0, max: 1.0 })
                .with_step_size(0.01)
                .with_unit(" %")
                .with_value_to_string(formatters::v2s_f32_percentage(0))
                .with_string_to_value(formatters::s2v_f32_percentage()),
            morph_bars: IntParam::new(
                "Morph Over",
                0,
                IntRange::Linear {
                    min: 0,
                    max: MAX_MORPH_BARS,
                },
            )
            .with_unit(" bars"),
            output: EnumParam::new("Output", Output::AllParts),
            output_channel_1: BoolParam::new("One Part on Channel 1", false),
            key: IntParam::new("Key", 0, IntRange::Linear { min: 0, max: 11 })
                .with_value_to_string(Arc::new(|value| {
                    NOTE_NAMES[value.rem_euclid(12) as usize].to_string()
                }))
                .with_string_to_value(Arc::new(|text| {
                    let text = text.trim();
                    NOTE_NAMES
                        .iter()
                        .position(|name| name.eq_ignore_ascii_case(text))
                        .map(|index| index as i32)
                })),
            progression: IntParam::new(
                "Progression",
                0,
                IntRange::Linear {
                    min: 0,
                    max: PRESETS.len() as i32 - 1,
                },
            )
            .with_value_to_string(Arc::new(|value| {
                PRESETS
                    .get(value as usize)
                    .map_or_else(String::new, |preset| preset.name.to_string())
            }))
            .with_string_to_value(Arc::new(|text| {
                PRESETS
                    .iter()
                    .position(|preset| preset.name.eq_ignore_ascii_case(text.trim()))
                    .map(|index| index as i32)
            })),
            scale_lock: BoolParam::new("Scale Lock", true),
            follow: EnumParam::new("Follow", Follow::Progression),
            swing: share("Swing".into()),
            drums: PartParams::new(Part::Drums),
            bass: PartParams::new(Part::Bass),
            melody: PartParams::new(Part::Melody),
        }
    }
}

impl LatentTrioParams {
    /// Whether `part` is sent, and on which 0-based MIDI channel.
    pub fn routing(&self, part: Part) -> (bool, u8) {
        let params = self.part(part);
        match self.output.value().only() {
            None => (params.enabled.value(), params.midi_channel()),
            Some(only) if only == part => {
                let channel = if self.output_channel_1.value() {
                    0
                } else {
                    params.midi_channel()
                };
                (params.enabled.value(), channel)
            }
            Some(_) => (false, params.midi_channel()),
        }
    }

    /// The parameters of `part`.
    pub fn part(&self, part: Part) -> &PartParams {
        match part {
            Part::Drums => &self.drums,
            Part::Bass => &self.bass,
            Part::Melody => &self.melody,
        }
    }

    /// The seed the models decode with: the dialled seed, changed by every
    /// roll of "New seed".
    pub fn decode_seed(&self) -> u32 {
        let rolls = self.seed_rolls.load(Ordering::Relaxed);
        (self.seed.value() as u32) ^ rolls.wrapping_mul(0x9E37_79B9)
    }

    /// Everything a decode depends on, as plain values, with the morph
    /// position the audio thread is playing (which trails the Morph knob
    /// while a glide is under way) and the chord last played into the note
    /// input (followed only when Follow says so). Cheap enough for every
    /// audio block: a few dozen atomic loads.
    pub fn snapshot(&self, morph: f32, played: Option<Chord>) -> KnobSnapshot {
        KnobSnapshot {
            seed: self.decode_seed(),
            parts: Part::ALL.map(|part| self.part(part).knobs()),
            stored_revision: self.stored.revision(),
            scenes_on: self.scenes_on.value(),
            morph,
            harmony: HarmonySettings {
                key_root: self.key.value().rem_euclid(12) as u8,
                preset: self.progression.value().max(0) as usize,
                scale_lock: self.scale_lock.value(),
                played: played.filter(|_| self.follow.value() == Follow::PlayedChords),
                typed: self.follow.value() == Follow::TypedChords,
            },
            swing: self.swing.value(),
            phrase: self.phrase.value().into(),
        }
    }
}
