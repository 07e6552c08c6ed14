//! Fixed-capacity note patterns shared by the worker (which fills them) and the
//! audio thread (which plays them). Nothing here allocates after construction,
//! so a [`Phrase`] can be handed to the audio thread and back without the audio
//! thread ever touching the allocator.

/// Sixteenth-note steps in one 4/4 bar: MusicVAE's grid.
pub const STEPS_PER_BAR: usize = 16;
/// Bars one model decodes at a time (the 2-bar models): a phrase is made
/// of such segments.
pub const MODEL_BARS: usize = 2;
/// Steps one model decodes at a time.
pub const MODEL_STEPS: usize = STEPS_PER_BAR * MODEL_BARS;
/// Bars a hierarchical (16-bar) model decodes: its conductor writes one
/// embedding per bar.
pub const LONG_MODEL_BARS: usize = 16;
/// Bars in a song of Song mode: 32 slots of 2 bars.
pub const SONG_BARS: usize = 64;
/// 2-bar slots in a song.
pub const SONG_SLOTS: usize = SONG_BARS / MODEL_BARS;
/// The longest phrase: a song.
pub const MAX_PHRASE_BARS: usize = SONG_BARS;
/// Steps in the longest phrase.
pub const MAX_PHRASE_STEPS: usize = STEPS_PER_BAR * MAX_PHRASE_BARS;
/// A note's timing offset from its 16th is counted in this fraction of a
/// 16th.
pub const OFFSET_UNITS_PER_STEP: i8 = 48;
/// The furthest a note moves from its 16th: a third of a 16th, early or
/// late (so neighbouring 16ths never trade places).
pub const MAX_OFFSET: i8 = OFFSET_UNITS_PER_STEP / 3;
/// Drum classes in MusicVAE's reduced kit.
pub const DRUM_CLASSES: usize = 9;
/// Most notes one part can hold in a phrase: every drum class on every step.
pub const MAX_NOTES_PER_PART: usize = MAX_PHRASE_STEPS * DRUM_CLASSES;

/// One of the three instruments the plugin plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// Nine-class drum kit.
    Drums,
    /// Monophonic bass line.
    Bass,
    /// Monophonic lead melody.
    Melody,
}

impl Part {
    /// Every part, in the order used for arrays indexed by [`Part::index`].
    pub const ALL: [Part; 3] = [Part::Drums, Part::Bass, Part::Melody];

    /// Position of this part in per-part arrays.
    pub const fn index(self) -> usize {
        match self {
            Part::Drums => 0,
            Part::Bass => 1,
            Part::Melody => 2,
        }
    }

    /// Lower-case name as used in model manifests, CLI options and file names.
    pub const fn name(self) -> &'static str {
        match self {
            Part::Drums => "drums",
            Part::Bass => "bass",
            Part::Melody => "melody",
        }
    }

    /// Capitalised name for people: track names, parameter groups, the GUI.
    pub const fn title(self) -> &'static str {
        match self {
            Part::Drums => "Drums",
            Part::Bass => "Bass",
            Part::Melody => "Melody",
        }
    }

    /// Default 0-based MIDI channel: melody on 1, bass on 2, drums on the
    /// General MIDI drum channel 10.
    pub const fn default_channel(self) -> u8 {
        match self {
            Part::Drums => 9,
            Part::Bass => 1,
            Part::Melody => 0,
        }
    }

    /// Parses a manifest / command-line part name.
    pub fn from_name(name: &str) -> Option<Part> {
        Part::ALL.into_iter().find(|part| part.name() == name)
    }
}

/// One note of a phrase, on the 16th grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Note {
    /// Step within the phrase where the note starts, `0..MAX_PHRASE_STEPS`.
    pub step: u16,
    /// How many steps the note sounds; at least 1. Drum hits last one step.
    pub length_steps: u8,
    /// MIDI pitch.
    pub pitch: u8,
    /// MIDI velocity, 1..=127.
    pub velocity: u8,
    /// How far the note sounds from its 16th, in 1/[`OFFSET_UNITS_PER_STEP`]
    /// of a 16th, within ±[`MAX_OFFSET`] (negative: early); 0 on the grid.
    pub offset: i8,
}

impl Note {
    /// When the note starts, in 16ths from the phrase start (off the grid
    /// by its offset).
    pub fn start(&self) -> f64 {
        f64::from(self.step)
            + f64::from(self.offset.clamp(-MAX_OFFSET, MAX_OFFSET))
                / f64::from(OFFSET_UNITS_PER_STEP)
    }

    /// Step (exclusive) at which the note ends, relative to the phrase start.
    pub fn end_step(&self) -> usize {
        self.step as usize + self.length_steps as usize
    }
}

/// The notes one part plays in a phrase, sorted by start step.
#[derive(Clone)]
pub struct PartPhrase {
    notes: [Note; MAX_NOTES_PER_PART],
    len: usize,
}

impl Default for PartPhrase {
    fn default() -> Self {
        Self {
            notes: [Note::default(); MAX_NOTES_PER_PART],
            len: 0,
        }
    }
}

impl PartPhrase {
    /// Removes every note, keeping the storage.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends a note. Notes must be pushed in non-decreasing step order.
    /// Returns `false` (and drops the note) if the phrase is full or the note
    /// is out of order or outside the phrase.
    pub fn push(&mut self, note: Note) -> bool {
        let in_order = self.len == 0 || self.notes[self.len - 1].step <= note.step;
        if self.len == MAX_NOTES_PER_PART
            || !in_order
            || note.step as usize >= MAX_PHRASE_STEPS
            || note.length_steps == 0
        {
            return false;
        }
        self.notes[self.len] = note;
        self.len += 1;
        true
    }

    /// The notes, sorted by start step.
    pub fn notes(&self) -> &[Note] {
        &self.notes[..self.len]
    }

    /// The notes, to change their velocity or offset (their steps, and so
    /// their order, stay as they are).
    pub fn notes_mut(&mut self) -> &mut [Note] {
        &mut self.notes[..self.len]
    }

    /// The notes starting on `step` (relative to the phrase start).
    pub fn notes_at(&self, step: usize) -> &[Note] {
        let notes = self.notes();
        let start = notes.partition_point(|note| (note.step as usize) < step);
        let end = notes.partition_point(|note| (note.step as usize) <= step);
        &notes[start..end]
    }

    /// Whether the part plays nothing in this phrase.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A decoded phrase of 2-16 bars for all three parts: song bar `n` plays its
/// bar `n mod bars`. Allocated on the worker, moved to the audio thread
/// through the bridge and moved back when spent.
#[derive(Clone)]
pub struct Phrase {
    /// The decode request this phrase answers (see the bridge).
    pub request_id: u64,
    /// Its length in bars, `MODEL_BARS..=MAX_PHRASE_BARS`.
    pub bars: usize,
    /// Whether it is the rest of the phrase sent before it for the same
    /// request (whose later bars were left for later): the same music up
    /// to there, so it may replace that phrase at any step.
    pub completes_previous: bool,
    /// Notes per part, indexed by [`Part::index`].
    pub parts: [PartPhrase; 3],
}

impl Default for Phrase {
    fn default() -> Self {
        Phrase {
            request_id: 0,
            bars: MODEL_BARS,
            completes_previous: false,
            parts: Default::default(),
        }
    }
}

impl Phrase {
    /// Its length in 16th steps.
    pub fn steps(&self) -> usize {
        self.bars * STEPS_PER_BAR
    }

    /// Notes of `part`.
    pub fn part(&self, part: Part) -> &PartPhrase {
        &self.parts[part.index()]
    }

    /// Mutable notes of `part`.
    pub fn part_mut(&mut self, part: Part) -> &mut PartPhrase {
        &mut self.parts[part.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(step: u16, pitch: u8) -> Note {
        Note {
            step,
            length_steps: 1,
            pitch,
            velocity: 100,
            offset: 0,
        }
    }

    #[test]
    fn notes_at_finds_every_note_starting_on_a_step() {
        let mut part = PartPhrase::default();
        assert!(part.push(note(0, 36)));
        assert!(part.push(note(4, 38)));
        assert!(part.push(note(4, 42)));
        assert!(part.push(note(8, 36)));
        let pitches: Vec<u8> = part.notes_at(4).iter().map(|n| n.pitch).collect();
        assert_eq!(pitches, vec![38, 42]);
        assert!(part.notes_at(5).is_empty());
        assert_eq!(part.notes_at(8).len(), 1);
    }

    #[test]
    fn push_refuses_out_of_order_or_silent_notes() {
        let mut part = PartPhrase::default();
        assert!(part.push(note(8, 36)));
        assert!(!part.push(note(4, 36)), "out of order");
        let silent = Note {
            length_steps: 0,
            ..note(9, 36)
        };
        assert!(!part.push(silent), "a note must sound");
        assert_eq!(part.notes().len(), 1);
    }

    #[test]
    fn a_phrase_holds_every_drum_class_on_every_step_of_a_64_bar_song() {
        let mut part = PartPhrase::default();
        for step in 0..MAX_PHRASE_STEPS {
            for class in 0..DRUM_CLASSES as u8 {
                assert!(part.push(note(step as u16, 36 + class)));
            }
        }
        assert!(!part.push(note(MAX_PHRASE_STEPS as u16 - 1, 36)), "full");
        let mut part = PartPhrase::default();
        assert!(
            !part.push(note(MAX_PHRASE_STEPS as u16, 36)),
            "past the song's end"
        );
    }
}
