//! The musician's settings that decide what the models play, frozen into a
//! plain `Copy` value. The audio thread takes a [`KnobSnapshot`] from the
//! parameters and sends it to the worker; the worker decodes exactly that
//! snapshot. Because a phrase is a pure function of its snapshot, a bounce, a
//! reloaded project and the CLI all play the same notes for the same knobs.

use crate::harmony::HarmonySettings;
use crate::pattern::{LONG_MODEL_BARS, MODEL_BARS, Part, SONG_BARS};

/// Latent knobs per part that move along the model's principal axes.
pub const PRINCIPAL_KNOBS: usize = 8;
/// Named attribute knobs per part (see [`AttributeKnob`]).
pub const ATTRIBUTE_KNOBS: usize = 3;
/// Range of a principal knob, in standard deviations of the encoded training set.
pub const PRINCIPAL_RANGE: f32 = 3.0;
/// Range of an attribute knob, in multiples of the attribute vector.
pub const ATTRIBUTE_RANGE: f32 = 2.0;

/// The attribute knobs, by position in [`PartKnobs::attributes`]. The names
/// match the `attributes` entries of a model's `latent_axes.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeKnob {
    /// More or fewer notes per bar.
    Density,
    /// More or fewer onsets off the beat.
    Syncopation,
    /// Higher or lower pitches (bass and melody only).
    Register,
}

impl AttributeKnob {
    /// Every attribute knob, in array order.
    pub const ALL: [AttributeKnob; ATTRIBUTE_KNOBS] = [
        AttributeKnob::Density,
        AttributeKnob::Syncopation,
        AttributeKnob::Register,
    ];

    /// Name of the attribute vector in `latent_axes.json`.
    pub const fn axis_name(self) -> &'static str {
        match self {
            AttributeKnob::Density => "density",
            AttributeKnob::Syncopation => "syncopation",
            AttributeKnob::Register => "register",
        }
    }

    /// Whether `part` has this knob (drums have no register).
    pub const fn applies_to(self, part: Part) -> bool {
        !matches!((self, part), (AttributeKnob::Register, Part::Drums))
    }
}

/// Everything that shapes one part's phrase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartKnobs {
    /// Whether the part plays at all. A muted part is still decoded so that
    /// un-muting is heard on the next bar line without waiting for the worker.
    pub enabled: bool,
    /// Sampling temperature; near 0 picks the most likely token every step.
    pub temperature: f32,
    /// Offsets along the principal axes, in `-PRINCIPAL_RANGE..=PRINCIPAL_RANGE`.
    pub principal: [f32; PRINCIPAL_KNOBS],
    /// Offsets along the attribute vectors, in `-ATTRIBUTE_RANGE..=ATTRIBUTE_RANGE`,
    /// indexed like [`AttributeKnob::ALL`].
    pub attributes: [f32; ATTRIBUTE_KNOBS],
    /// How far the part moves from the grid and its fixed velocities
    /// towards the humanize model's performance, 0..=1.
    pub humanize: f32,
}

impl Default for PartKnobs {
    fn default() -> Self {
        Self {
            enabled: true,
            temperature: 0.5,
            principal: [0.0; PRINCIPAL_KNOBS],
            attributes: [0.0; ATTRIBUTE_KNOBS],
            humanize: 0.0,
        }
    }
}

/// How one part's notes sit against the grid: what humanize and swing do
/// after decoding (the latent and the notes stay the same).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Feel {
    /// The part's Humanize knob, 0..=1.
    pub humanize: f32,
    /// The global Swing knob, 0..=1: how late every second 16th comes, up
    /// to a third of a 16th (a triplet feel).
    pub swing: f32,
}

/// How long the phrase is, and so which models write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PhraseLength {
    /// As long as the progression (2 bars at least), written by the 2-bar
    /// models a segment at a time.
    #[default]
    Progression,
    /// A fixed number of bars: 2 from the 2-bar models; 4, 8 or 16 from the
    /// first bars of the 16-bar hierarchical models (the progression laid
    /// over them, repeated or cut).
    Bars(usize),
    /// A 64-bar song: the song priors write a latent for each 2-bar slot and
    /// the 2-bar models play them (Song mode).
    Song,
}

impl PhraseLength {
    /// Bars in the phrase over a progression of `progression_bars`.
    pub fn bars(self, progression_bars: usize) -> usize {
        match self {
            PhraseLength::Progression => progression_bars.max(MODEL_BARS),
            PhraseLength::Bars(bars) => bars.clamp(MODEL_BARS, LONG_MODEL_BARS),
            PhraseLength::Song => SONG_BARS,
        }
    }

    /// Whether the 16-bar hierarchical models write it.
    pub fn wants_long_models(self) -> bool {
        matches!(self, PhraseLength::Bars(bars) if bars > MODEL_BARS)
    }
}

/// The full set of settings the worker decodes a phrase from.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KnobSnapshot {
    /// The seed that picks the base latent and drives sampling.
    pub seed: u32,
    /// Per-part settings, indexed by [`Part::index`].
    pub parts: [PartKnobs; 3],
    /// Revision of the stored latents (imported clips, scenes) to decode
    /// with; the latents themselves stay with the worker.
    pub stored_revision: u32,
    /// Play the A-B morph instead of seed and knobs (where both scenes exist).
    pub scenes_on: bool,
    /// Position between scene A (0) and B (1).
    pub morph: f32,
    /// Key, progression and scale lock, which bass and melody follow.
    pub harmony: HarmonySettings,
    /// Swing, 0..=1 (see [`Feel::swing`]).
    pub swing: f32,
    /// The Phrase setting.
    pub phrase: PhraseLength,
}

impl KnobSnapshot {
    /// Settings of `part`.
    pub fn part(&self, part: Part) -> &PartKnobs {
        &self.parts[part.index()]
    }

    /// How `part`'s notes sit against the grid.
    pub fn feel(&self, part: Part) -> Feel {
        Feel {
            humanize: self.part(part).humanize,
            swing: self.swing,
        }
    }

    /// Whether two snapshots decode to the same notes. Muting is not part of
    /// the decode, so toggling a part never asks the worker for anything.
    pub fn decodes_like(&self, other: &KnobSnapshot) -> bool {
        self.seed == other.seed
            && self.harmony == other.harmony
            && self.swing == other.swing
            && self.phrase == other.phrase
            && self.stored_revision == other.stored_revision
            && self.scenes_on == other.scenes_on
            && (!self.scenes_on || self.morph == other.morph)
            && self.parts.iter().zip(&other.parts).all(|(a, b)| {
                a.temperature == b.temperature
                    && a.humanize == b.humanize
                    && a.principal == b.principal
                    && a.attributes == b.attributes
            })
    }
}
