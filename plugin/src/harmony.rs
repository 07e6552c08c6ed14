//! Chords as the chord-conditioned models hear them, and the progression the
//! bass and melody follow.
//!
//! A chord is the set of pitch classes it sounds (its bass note included),
//! as in the models' training data (POP909's chord annotations, see
//! `models/latent_trio_models/harmony.py`); the models read it at every 16th
//! step as 12 pitch-class flags plus a no-chord flag.

use crate::pattern::{LONG_MODEL_BARS, MODEL_STEPS, STEPS_PER_BAR};

/// The longest progression: as long as a 16-bar model's phrase.
pub const MAX_PROGRESSION_BARS: usize = LONG_MODEL_BARS;

/// Inputs per step of a chord-conditioned model: 12 pitch classes (C first)
/// and a no-chord flag.
pub const CHROMA_SIZE: usize = 13;

/// The pitch classes a chord sounds: bit 0 = C, bit 11 = B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Chord(u16);

impl Chord {
    /// No chord: the models were trained on songs that rest on none too.
    pub const NONE: Chord = Chord(0);

    /// The chord of `intervals` above `root` (a pitch class, 0 = C).
    pub fn new(root: u8, intervals: &[u8]) -> Chord {
        Chord(
            intervals
                .iter()
                .fold(0, |mask, interval| mask | 1 << ((root + interval) % 12)),
        )
    }

    /// A major triad on `root`.
    pub fn major(root: u8) -> Chord {
        Chord::new(root, &[0, 4, 7])
    }

    /// A minor triad on `root`.
    pub fn minor(root: u8) -> Chord {
        Chord::new(root, &[0, 3, 7])
    }

    /// The pitch classes as a mask (bit 0 = C).
    pub fn pitch_classes(self) -> u16 {
        self.0
    }

    /// The chord of these pitch classes (bit 0 = C; higher bits ignored).
    pub fn from_pitch_classes(mask: u16) -> Chord {
        Chord(mask & 0xFFF)
    }

    /// Its usual name if it is a chord the parser reads ("Am", "G7"), else
    /// its notes ("C E G#").
    pub fn name(self) -> String {
        if self == Chord::NONE {
            return "N.C.".into();
        }
        for root in 0..12u8 {
            if !self.contains(root) {
                continue;
            }
            if let Some(suffix) = spelled_suffix(|intervals| Chord::new(root, intervals) == self) {
                return format!("{}{suffix}", ROOT_NAMES[usize::from(root)]);
            }
        }
        (0..12u8)
            .filter(|&pitch_class| self.contains(pitch_class))
            .map(|pitch_class| ROOT_NAMES[usize::from(pitch_class)])
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The same chord `semitones` higher.
    pub fn transposed(self, semitones: u8) -> Chord {
        let k = semitones % 12;
        Chord(((self.0 << k) | (self.0 >> (12 - k))) & 0xFFF)
    }

    /// Whether the chord sounds `pitch` (in any octave).
    pub fn contains(self, pitch: u8) -> bool {
        self.0 >> (pitch % 12) & 1 == 1
    }

    /// The model input of this chord: 12 pitch-class flags, then no-chord.
    pub fn chroma(self) -> [f32; CHROMA_SIZE] {
        let mut chroma = [0.0; CHROMA_SIZE];
        for (pitch_class, flag) in chroma.iter_mut().take(12).enumerate() {
            *flag = f32::from(self.0 >> pitch_class & 1 == 1);
        }
        chroma[12] = f32::from(self == Chord::NONE);
        chroma
    }
}

/// The chord sounding at every 16th step of one model segment (2 bars).
pub type SegmentChords = [Chord; MODEL_STEPS];

/// Chord symbol suffixes and the intervals above the root they sound.
/// Longest first, so that "m7b5" is not read as "m" + "7b5".
const SUFFIXES: &[(&str, &[u8])] = &[
    ("7sus4", &[0, 5, 7, 10]),
    ("mmaj7", &[0, 3, 7, 11]),
    ("m7b5", &[0, 3, 6, 10]),
    ("maj7", &[0, 4, 7, 11]),
    ("maj9", &[0, 2, 4, 7, 11]),
    ("min7", &[0, 3, 7, 10]),
    ("add9", &[0, 2, 4, 7]),
    ("dim7", &[0, 3, 6, 9]),
    ("sus2", &[0, 2, 7]),
    ("sus4", &[0, 5, 7]),
    ("min", &[0, 3, 7]),
    ("maj", &[0, 4, 7]),
    ("dim", &[0, 3, 6]),
    ("aug", &[0, 4, 8]),
    ("sus", &[0, 5, 7]),
    ("m7", &[0, 3, 7, 10]),
    ("m9", &[0, 2, 3, 7, 10]),
    ("m6", &[0, 3, 7, 9]),
    ("M7", &[0, 4, 7, 11]),
    ("-7", &[0, 3, 7, 10]),
    ("°7", &[0, 3, 6, 9]),
    ("m", &[0, 3, 7]),
    ("-", &[0, 3, 7]),
    ("°", &[0, 3, 6]),
    ("ø", &[0, 3, 6, 10]),
    ("+", &[0, 4, 8]),
    ("7", &[0, 4, 7, 10]),
    ("9", &[0, 2, 4, 7, 10]),
    ("6", &[0, 4, 7, 9]),
    ("5", &[0, 7]),
    ("", &[0, 4, 7]),
];

/// The plainest suffix whose intervals `fits` ("maj7" rather than "M7",
/// "dim" rather than "°").
fn spelled_suffix(fits: impl Fn(&[u8]) -> bool) -> Option<&'static str> {
    SUFFIXES
        .iter()
        .filter(|(_, intervals)| fits(intervals))
        .map(|(name, _)| *name)
        .min_by_key(|name| {
            // "sus" alone leaves the reader to guess sus4.
            let unusual = !name.chars().all(|c| c.is_ascii_alphanumeric())
                || name.starts_with('M')
                || *name == "sus";
            (unusual, name.len())
        })
}

/// Why a typed chord, key or progression could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HarmonyError {
    /// A chord symbol that is not a chord.
    #[error(
        "cannot read the chord \"{0}\": write a root A-G (with # or b), then a kind such as m, 7, m7, maj7, dim, aug, sus4, and optionally /bass (e.g. Am, F#m7b5, C/E)"
    )]
    Chord(String),
    /// A key that is not a key.
    #[error(
        "cannot read the key \"{0}\": write a root and major or minor (e.g. \"A minor\", \"Eb major\", \"F#m\")"
    )]
    Key(String),
    /// A progression of no bars or of too many.
    #[error(
        "a progression is 1 to 16 bars (found {0}): one chord a bar (\"Am F C G\"), or bars between | with one or two chords each (\"Am F | C G\")"
    )]
    Length(usize),
    /// A bar with more than two chords.
    #[error("bar {bar} has {found} chords; a bar holds one chord, or two (one a half bar)")]
    BarLength {
        /// The bar, counted from 1.
        bar: usize,
        /// How many chords it had.
        found: usize,
    },
}

/// The pitch class (0 = C) of a note name ("C", "F#", "Bb"), and what follows it.
fn pitch_class(text: &str) -> Option<(u8, &str)> {
    let mut chars = text.chars();
    let natural = match chars.next()? {
        'C' => 0,
        'D' => 2,
        'E' => 4,
        'F' => 5,
        'G' => 7,
        'A' => 9,
        'B' => 11,
        _ => return None,
    };
    let rest = &text[1..];
    let (shift, rest) = if let Some(rest) = rest.strip_prefix(['#', '♯']) {
        (1, rest)
    } else if let Some(rest) = rest.strip_prefix(['b', '♭']) {
        (11, rest)
    } else {
        (0, rest)
    };
    Some(((natural + shift) % 12, rest))
}

impl std::str::FromStr for Chord {
    type Err = HarmonyError;

    /// Reads a chord symbol: "Am", "F#m7b5", "Bbmaj7", "C/E", "Gsus4", or
    /// "N" / "N.C." for no chord.
    fn from_str(text: &str) -> Result<Chord, HarmonyError> {
        let text = text.trim();
        if matches!(text, "N" | "N.C." | "NC") {
            return Ok(Chord::NONE);
        }
        let wrong = || HarmonyError::Chord(text.to_string());
        let (symbol, bass) = match text.split_once('/') {
            Some((symbol, bass)) => match pitch_class(bass) {
                Some((bass, "")) => (symbol, Some(bass)),
                _ => return Err(wrong()),
            },
            None => (text, None),
        };
        let (root, suffix) = pitch_class(symbol).ok_or_else(wrong)?;
        let (_, intervals) = SUFFIXES
            .iter()
            .find(|(name, _)| *name == suffix)
            .ok_or_else(wrong)?;
        let chord = Chord::new(root, intervals);
        Ok(bass.map_or(chord, |bass| Chord(chord.0 | 1 << bass)))
    }
}

/// Major or minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The major scale.
    #[default]
    Major,
    /// The natural minor scale.
    Minor,
}

impl Mode {
    /// "major" or "minor".
    pub fn name(self) -> &'static str {
        match self {
            Mode::Major => "major",
            Mode::Minor => "minor",
        }
    }
}

/// A key: the tonic's pitch class and the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Key {
    /// Pitch class of the tonic, 0 = C.
    pub root: u8,
    /// Major or minor.
    pub mode: Mode,
}

impl Key {
    /// The key's scale as a set of pitch classes.
    pub fn scale(self) -> Chord {
        match self.mode {
            Mode::Major => Chord::new(self.root, &[0, 2, 4, 5, 7, 9, 11]),
            Mode::Minor => Chord::new(self.root, &[0, 2, 3, 5, 7, 8, 10]),
        }
    }
}

impl Key {
    /// The tonic's name, e.g. "Eb".
    pub fn name(self) -> &'static str {
        ROOT_NAMES[usize::from(self.root % 12)]
    }

    /// The key a chord symbol suggests as a progression's first chord: its
    /// root, minor if the chord has a minor third and no major one ("Am7" ->
    /// A minor, "Cmaj7" -> C major).
    pub fn of_chord_symbol(symbol: &str) -> Result<Key, HarmonyError> {
        let chord: Chord = symbol.parse()?;
        let (root, _) =
            pitch_class(symbol.trim()).ok_or_else(|| HarmonyError::Chord(symbol.into()))?;
        let minor = chord.contains(root + 3) && !chord.contains(root + 4);
        Ok(Key {
            root,
            mode: if minor { Mode::Minor } else { Mode::Major },
        })
    }
}

impl Key {
    /// The chord a musician means by the notes held (`held`: bit k = pitch
    /// class k): two or more pitch classes are the chord; a single note is
    /// the root of the key's triad on it (a major triad if the note is not in
    /// the key); nothing held is no chord.
    pub fn chord_of_held(self, held: u16) -> Option<Chord> {
        let held = held & 0xFFF;
        match held.count_ones() {
            0 => None,
            1 => {
                let root = held.trailing_zeros() as u8;
                let scale = self.scale();
                if !scale.contains(root) {
                    return Some(Chord::major(root));
                }
                // Stack two thirds within the scale: the 3rd and 5th scale
                // notes above the root.
                let above = |from: u8| {
                    (1..12)
                        .map(|k| from + k)
                        .find(|&p| scale.contains(p))
                        .unwrap_or(from)
                };
                let third = above(above(root));
                let fifth = above(above(third));
                Some(Chord(1 << root | 1 << (third % 12) | 1 << (fifth % 12)))
            }
            _ => Some(Chord(held)),
        }
    }
}

impl std::str::FromStr for Key {
    type Err = HarmonyError;

    /// Reads "A minor", "Eb major", "F#m", "C".
    fn from_str(text: &str) -> Result<Key, HarmonyError> {
        let wrong = || HarmonyError::Key(text.to_string());
        let (root, rest) = pitch_class(text.trim()).ok_or_else(wrong)?;
        let mode = match rest.trim().to_lowercase().as_str() {
            "" | "major" | "maj" => Mode::Major,
            "m" | "minor" | "min" => Mode::Minor,
            _ => return Err(wrong()),
        };
        Ok(Key { root, mode })
    }
}

/// Chords a bar holds at most: one for the whole bar, or one for each half.
pub const CHORDS_PER_BAR: usize = 2;

/// A chord progression of 1 to [`MAX_PROGRESSION_BARS`] bars, one or two chords
/// a bar, looping with the song's bars. Fixed-size and `Copy`, so that it
/// travels to the worker inside a knob snapshot without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progression {
    /// Per bar: the chord of its first half and of its second half (the
    /// same chord twice for a one-chord bar).
    bars: [[Chord; CHORDS_PER_BAR]; MAX_PROGRESSION_BARS],
    /// Bars in use.
    len: usize,
}

impl Progression {
    /// The progression of `bars`, each one or two chords.
    pub fn new(bars: &[Vec<Chord>]) -> Result<Progression, HarmonyError> {
        if bars.is_empty() || bars.len() > MAX_PROGRESSION_BARS {
            return Err(HarmonyError::Length(bars.len()));
        }
        let mut progression = Progression {
            bars: [[Chord::NONE; CHORDS_PER_BAR]; MAX_PROGRESSION_BARS],
            len: bars.len(),
        };
        for (index, (slot, chords)) in progression.bars.iter_mut().zip(bars).enumerate() {
            *slot = match chords.as_slice() {
                [chord] => [*chord; CHORDS_PER_BAR],
                [first, second] => [*first, *second],
                other => {
                    return Err(HarmonyError::BarLength {
                        bar: index + 1,
                        found: other.len(),
                    });
                }
            };
        }
        Ok(progression)
    }

    /// One chord a bar.
    pub fn one_chord_a_bar(chords: &[Chord]) -> Result<Progression, HarmonyError> {
        let bars: Vec<Vec<Chord>> = chords.iter().map(|&chord| vec![chord]).collect();
        Progression::new(&bars)
    }

    /// Its length in bars.
    pub fn bars(&self) -> usize {
        self.len
    }

    /// The chords of bar `bar` (counted from 0, looping): one, or one per half.
    pub fn bar(&self, bar: usize) -> &[Chord] {
        let chords = &self.bars[bar % self.len];
        if chords[0] == chords[1] {
            &chords[..1]
        } else {
            chords
        }
    }

    /// The chord sounding at `step` 16ths after the progression's start
    /// (looping).
    pub fn chord_at(&self, step: usize) -> Chord {
        let bar = step / STEPS_PER_BAR % self.len;
        let half = step % STEPS_PER_BAR * CHORDS_PER_BAR / STEPS_PER_BAR;
        self.bars[bar][half]
    }

    /// The chord at every step of the model segment that starts on bar
    /// `first_bar` (what a 2-bar model decodes over).
    pub fn segment_chords(&self, first_bar: usize) -> SegmentChords {
        std::array::from_fn(|step| self.chord_at(first_bar * STEPS_PER_BAR + step))
    }

    /// The chords in order (a two-chord bar gives two).
    pub fn chords(&self) -> Vec<Chord> {
        (0..self.len)
            .flat_map(|bar| self.bar(bar).to_vec())
            .collect()
    }

    /// How a musician writes it: bars between `|`, e.g. "Am | F | C G".
    pub fn symbols(&self) -> String {
        (0..self.len)
            .map(|bar| {
                self.bar(bar)
                    .iter()
                    .map(|chord| chord.name())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

impl std::str::FromStr for Progression {
    type Err = HarmonyError;

    /// Reads chord symbols, one a bar ("Am F C G"), or bars between `|`
    /// with one or two chords each ("Dm7 G7 | Cmaj7 | Cmaj7 A7"). Commas
    /// separate like spaces; a `|` at either end is ignored.
    fn from_str(text: &str) -> Result<Progression, HarmonyError> {
        let chords_of = |bar: &str| {
            bar.split(|c: char| c.is_whitespace() || c == ',')
                .filter(|symbol| !symbol.is_empty())
                .map(str::parse)
                .collect::<Result<Vec<Chord>, _>>()
        };
        if text.contains('|') {
            let bars = text
                .trim()
                .trim_matches('|')
                .split('|')
                .map(chords_of)
                .collect::<Result<Vec<_>, _>>()?;
            Progression::new(&bars)
        } else {
            Progression::one_chord_a_bar(&chords_of(text)?)
        }
    }
}

/// A progression the musician typed, as typed (saved with the project and
/// read again when used, so that what was typed is what the window shows).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TypedProgression {
    /// Chord symbols, e.g. "Am F C G".
    pub chords: String,
    /// The key, e.g. "A minor"; `None`: the key of the first chord.
    #[serde(default)]
    pub key: Option<String>,
}

impl TypedProgression {
    /// The progression and its key, or why they cannot be read.
    pub fn read(&self) -> Result<(Progression, Key), HarmonyError> {
        let progression: Progression = self.chords.parse()?;
        let key = match &self.key {
            Some(key) => key.parse()?,
            None => {
                Key::of_chord_symbol(self.chords.split_whitespace().next().unwrap_or_default())?
            }
        };
        Ok((progression, key))
    }
}

/// A common progression, written in scale degrees so that it plays in any
/// key, one chord a bar: each chord is (semitones above the tonic,
/// intervals above its root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressionPreset {
    /// What the menu shows, e.g. "I V vi IV".
    pub name: &'static str,
    /// The mode it belongs to (which scale the scale lock keeps).
    pub mode: Mode,
    /// Its chords, one a bar.
    pub degrees: &'static [(u8, &'static [u8])],
}

const MAJOR: &[u8] = &[0, 4, 7];
const MINOR: &[u8] = &[0, 3, 7];
const MINOR_7: &[u8] = &[0, 3, 7, 10];
const DOMINANT_7: &[u8] = &[0, 4, 7, 10];
const MAJOR_7: &[u8] = &[0, 4, 7, 11];

/// The progressions a musician picks from, most common first; new ones go
/// at the end, since projects store the index. "I bVII IV I" borrows a
/// chord from the minor and the blues plays dominant sevenths: neither is
/// diatonic.
pub const PRESETS: &[ProgressionPreset] = &[
    ProgressionPreset {
        name: "I V vi IV",
        mode: Mode::Major,
        degrees: &[(0, MAJOR), (7, MAJOR), (9, MINOR), (5, MAJOR)],
    },
    ProgressionPreset {
        name: "vi IV I V",
        mode: Mode::Major,
        degrees: &[(9, MINOR), (5, MAJOR), (0, MAJOR), (7, MAJOR)],
    },
    ProgressionPreset {
        name: "I vi IV V",
        mode: Mode::Major,
        degrees: &[(0, MAJOR), (9, MINOR), (5, MAJOR), (7, MAJOR)],
    },
    ProgressionPreset {
        name: "I IV",
        mode: Mode::Major,
        degrees: &[(0, MAJOR), (5, MAJOR)],
    },
    ProgressionPreset {
        name: "ii7 V7 Imaj7 Imaj7",
        mode: Mode::Major,
        degrees: &[(2, MINOR_7), (7, DOMINANT_7), (0, MAJOR_7), (0, MAJOR_7)],
    },
    ProgressionPreset {
        name: "i VI III VII (minor)",
        mode: Mode::Minor,
        degrees: &[(0, MINOR), (8, MAJOR), (3, MAJOR), (10, MAJOR)],
    },
    ProgressionPreset {
        name: "i iv v i (minor)",
        mode: Mode::Minor,
        degrees: &[(0, MINOR), (5, MINOR), (7, MINOR), (0, MINOR)],
    },
    ProgressionPreset {
        name: "I bVII IV I",
        mode: Mode::Major,
        degrees: &[(0, MAJOR), (10, MAJOR), (5, MAJOR), (0, MAJOR)],
    },
    ProgressionPreset {
        name: "I V vi iii IV I IV V (8 bars)",
        mode: Mode::Major,
        degrees: &[
            (0, MAJOR),
            (7, MAJOR),
            (9, MINOR),
            (4, MINOR),
            (5, MAJOR),
            (0, MAJOR),
            (5, MAJOR),
            (7, MAJOR),
        ],
    },
    ProgressionPreset {
        name: "12-bar blues",
        mode: Mode::Major,
        degrees: &[
            (0, DOMINANT_7),
            (0, DOMINANT_7),
            (0, DOMINANT_7),
            (0, DOMINANT_7),
            (5, DOMINANT_7),
            (5, DOMINANT_7),
            (0, DOMINANT_7),
            (0, DOMINANT_7),
            (7, DOMINANT_7),
            (5, DOMINANT_7),
            (0, DOMINANT_7),
            (7, DOMINANT_7),
        ],
    },
];

/// How chord names spell each root (flats where musicians mostly write them).
const ROOT_NAMES: [&str; 12] = [
    "C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B",
];

impl ProgressionPreset {
    /// Its chord symbols with the tonic on `root`, e.g. "A E F#m D".
    pub fn chord_names(&self, root: u8) -> Vec<String> {
        self.degrees
            .iter()
            .map(|&(degree, intervals)| {
                let suffix = spelled_suffix(|known| known == intervals).unwrap_or("?");
                format!("{}{suffix}", ROOT_NAMES[usize::from((root + degree) % 12)])
            })
            .collect()
    }

    /// Its chords with the tonic on `root` (0 = C), one a bar.
    pub fn in_key(&self, root: u8) -> Progression {
        let chords: Vec<Chord> = self
            .degrees
            .iter()
            .map(|&(degree, intervals)| Chord::new(root + degree, intervals))
            .collect();
        Progression::one_chord_a_bar(&chords).expect("every preset is 1 to 16 bars")
    }
}

/// What bass and melody follow and how strictly: the harmony part of a
/// knob snapshot, plain `Copy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HarmonySettings {
    /// Pitch class of the tonic, 0 = C.
    pub key_root: u8,
    /// Index into [`PRESETS`].
    pub preset: usize,
    /// Notes outside the key's scale get no probability.
    pub scale_lock: bool,
    /// The chord played into the plugin, when it follows played chords
    /// (`None`: the preset plays).
    pub played: Option<Chord>,
    /// Follow the typed progression (saved with the project) instead of the
    /// preset, where there is one that can be read.
    pub typed: bool,
}

impl Default for HarmonySettings {
    fn default() -> Self {
        HarmonySettings {
            key_root: 0,
            preset: 0,
            scale_lock: true,
            played: None,
            typed: false,
        }
    }
}

impl HarmonySettings {
    /// The chosen preset (the first if the index is out of range).
    pub fn preset(self) -> &'static ProgressionPreset {
        PRESETS.get(self.preset).unwrap_or(&PRESETS[0])
    }

    /// The key: the root, in the preset's mode.
    pub fn key(self) -> Key {
        Key {
            root: self.key_root % 12,
            mode: self.preset().mode,
        }
    }

    /// The progression in the key: the chord played in, held bar after
    /// bar, or else the preset.
    pub fn progression(self) -> Progression {
        match self.played {
            Some(chord) => {
                Progression::one_chord_a_bar(&[chord]).expect("one bar is a progression")
            }
            None => self.preset().in_key(self.key_root % 12),
        }
    }
}

/// What bass and melody follow until a progression is chosen: the first
/// preset in C major, I V vi IV, a chord a bar (C | G | Am | F).
pub fn default_progression() -> Progression {
    HarmonySettings::default().progression()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chord_is_the_pitch_classes_it_sounds_in_any_octave() {
        let a_minor = Chord::minor(9);
        assert!(a_minor.contains(57) && a_minor.contains(60) && a_minor.contains(64 + 12));
        assert!(!a_minor.contains(59));
        let chroma = a_minor.chroma();
        assert_eq!(chroma.iter().sum::<f32>(), 3.0);
        assert_eq!(
            (chroma[0], chroma[4], chroma[9], chroma[12]),
            (1.0, 1.0, 1.0, 0.0)
        );
    }

    #[test]
    fn a_transposed_chord_wraps_round_the_octave() {
        assert_eq!(Chord::major(7).transposed(7), Chord::major(2));
        assert_eq!(Chord::minor(9).transposed(12), Chord::minor(9));
        assert_eq!(Chord::NONE.transposed(5), Chord::NONE);
    }

    #[test]
    fn no_chord_raises_only_the_no_chord_flag() {
        let chroma = Chord::NONE.chroma();
        assert_eq!(chroma[12], 1.0);
        assert_eq!(chroma.iter().sum::<f32>(), 1.0);
    }

    fn chord(symbol: &str) -> Chord {
        symbol.parse().unwrap()
    }

    #[test]
    fn every_common_chord_symbol_reads_as_its_pitch_classes() {
        let cases: &[(&str, u8, &[u8])] = &[
            ("C", 0, &[0, 4, 7]),
            ("Am", 9, &[0, 3, 7]),
            ("F#m", 6, &[0, 3, 7]),
            ("Bb", 10, &[0, 4, 7]),
            ("Ebmaj7", 3, &[0, 4, 7, 11]),
            ("CM7", 0, &[0, 4, 7, 11]),
            ("G7", 7, &[0, 4, 7, 10]),
            ("Dm7", 2, &[0, 3, 7, 10]),
            ("D-7", 2, &[0, 3, 7, 10]),
            ("Bm7b5", 11, &[0, 3, 6, 10]),
            ("Bø", 11, &[0, 3, 6, 10]),
            ("Bdim", 11, &[0, 3, 6]),
            ("C#dim7", 1, &[0, 3, 6, 9]),
            ("Caug", 0, &[0, 4, 8]),
            ("C+", 0, &[0, 4, 8]),
            ("Gsus4", 7, &[0, 5, 7]),
            ("Gsus", 7, &[0, 5, 7]),
            ("Dsus2", 2, &[0, 2, 7]),
            ("G7sus4", 7, &[0, 5, 7, 10]),
            ("F6", 5, &[0, 4, 7, 9]),
            ("Am6", 9, &[0, 3, 7, 9]),
            ("Cadd9", 0, &[0, 2, 4, 7]),
            ("E5", 4, &[0, 7]),
        ];
        for &(symbol, root, intervals) in cases {
            assert_eq!(chord(symbol), Chord::new(root, intervals), "{symbol}");
        }
    }

    #[test]
    fn a_chord_is_named_as_musicians_write_it() {
        for name in [
            "C", "Am", "F#m", "Bb", "G7", "Dm7", "Ebmaj7", "Bdim", "Csus4", "Caug",
        ] {
            assert_eq!(chord(name).name(), name);
        }
        assert_eq!(Chord::from_pitch_classes(0b1_0001_0001).name(), "Caug");
        assert_eq!(Chord::from_pitch_classes(0b11).name(), "C C#");
        assert_eq!(Chord::NONE.name(), "N.C.");
    }

    #[test]
    fn a_slash_chord_adds_its_bass_note() {
        assert_eq!(chord("C/E"), chord("C"));
        assert_eq!(chord("C/Bb"), chord("C7"));
        assert_eq!(chord("Am/G"), chord("Am7"));
        assert!(chord("D/F#").contains(6));
    }

    #[test]
    fn garbage_is_refused_with_how_to_write_a_chord() {
        for garbage in ["H", "am", "Cx", "C/H", "C/", "7", "", "Cmaj13#11"] {
            let error = garbage.parse::<Chord>().unwrap_err();
            assert!(
                error.to_string().contains("write a root A-G"),
                "{garbage}: {error}"
            );
        }
        assert_eq!(chord("N.C."), Chord::NONE);
    }

    #[test]
    fn typed_chords_play_one_a_bar_and_bar_lines_allow_two() {
        let progression: Progression = "Am F C G".parse().unwrap();
        assert_eq!(progression.bars(), 4);
        assert_eq!(
            [0, 16, 32, 48, 64].map(|step| progression.chord_at(step)),
            [chord("Am"), chord("F"), chord("C"), chord("G"), chord("Am")],
            "a chord a bar, looping"
        );
        let halves: Progression = "| Dm7 G7 | Cmaj7 |".parse().unwrap();
        assert_eq!(halves.bars(), 2);
        let (dm7, g7, cmaj7) = (chord("Dm7"), chord("G7"), chord("Cmaj7"));
        assert_eq!(
            [0, 7, 8, 15, 16, 31].map(|step| halves.chord_at(step)),
            [dm7, dm7, g7, g7, cmaj7, cmaj7]
        );
        assert_eq!(halves.symbols(), "Dm7 G7 | Cmaj7");
        let three: Progression = "C, F, G".parse().unwrap();
        assert_eq!(three.segment_chords(2)[16], chord("C"), "bar 4 is bar 1");
        let seventeen = ["C"; 17].join(" ");
        let error = seventeen.parse::<Progression>().unwrap_err();
        assert!(error.to_string().contains("found 17"), "{error}");
        let crowded = "C F G | C".parse::<Progression>().unwrap_err();
        assert!(
            crowded.to_string().contains("bar 1 has 3 chords"),
            "{crowded}"
        );
        assert!("".parse::<Progression>().is_err());
        assert!(
            "Am F Xyz G"
                .parse::<Progression>()
                .unwrap_err()
                .to_string()
                .contains("Xyz")
        );
    }

    #[test]
    fn keys_read_in_the_ways_musicians_write_them() {
        let a_minor = Key {
            root: 9,
            mode: Mode::Minor,
        };
        for text in ["A minor", "Am", "A min", " A Minor "] {
            assert_eq!(text.parse::<Key>(), Ok(a_minor), "{text}");
        }
        assert_eq!(
            "Eb major".parse::<Key>(),
            Ok(Key {
                root: 3,
                mode: Mode::Major
            })
        );
        assert_eq!(
            "F#".parse::<Key>(),
            Ok(Key {
                root: 6,
                mode: Mode::Major
            })
        );
        assert!("A dorian".parse::<Key>().is_err());
        assert_eq!(Key::of_chord_symbol("Am7"), Ok(a_minor));
        assert_eq!(
            Key::of_chord_symbol("Cmaj7"),
            Ok(Key {
                root: 0,
                mode: Mode::Major
            })
        );
        assert!(a_minor.scale().contains(67) && !a_minor.scale().contains(68));
    }

    #[test]
    fn held_notes_become_a_chord_and_a_single_note_is_a_root_in_the_key() {
        let c_major = Key {
            root: 0,
            mode: Mode::Major,
        };
        let held = |pitches: &[u8]| pitches.iter().fold(0u16, |mask, p| mask | 1 << (p % 12));
        assert_eq!(
            c_major.chord_of_held(held(&[57, 60, 64])),
            Some(chord("Am"))
        );
        assert_eq!(
            c_major.chord_of_held(held(&[50])),
            Some(chord("Dm")),
            "ii in C"
        );
        assert_eq!(
            c_major.chord_of_held(held(&[55, 67])),
            Some(chord("G")),
            "G in octaves"
        );
        assert_eq!(c_major.chord_of_held(held(&[59])), Some(chord("Bdim")));
        assert_eq!(
            c_major.chord_of_held(held(&[58])),
            Some(chord("Bb")),
            "out of the key"
        );
        assert_eq!(
            c_major.chord_of_held(held(&[60, 67])),
            Some(Chord::new(0, &[0, 7]))
        );
        assert_eq!(c_major.chord_of_held(0), None);
        let a_minor = Key {
            root: 9,
            mode: Mode::Minor,
        };
        assert_eq!(
            a_minor.chord_of_held(held(&[64])),
            Some(chord("Em")),
            "v in A minor"
        );
    }

    #[test]
    fn a_preset_plays_in_the_chosen_key() {
        let in_a = HarmonySettings {
            key_root: 9,
            preset: 0,
            scale_lock: true,
            played: None,
            typed: false,
        };
        let chords = in_a.progression();
        assert_eq!(
            chords.chords(),
            [chord("A"), chord("E"), chord("F#m"), chord("D")]
        );
        assert_eq!(PRESETS[0].chord_names(9), ["A", "E", "F#m", "D"]);
        assert_eq!(PRESETS[4].chord_names(0), ["Dm7", "G7", "Cmaj7", "Cmaj7"]);
        let minor = HarmonySettings {
            key_root: 9,
            preset: 5,
            scale_lock: true,
            played: None,
            typed: false,
        };
        assert_eq!(
            minor.key(),
            Key {
                root: 9,
                mode: Mode::Minor
            }
        );
        assert_eq!(
            minor.progression().chords(),
            [chord("Am"), chord("F"), chord("C"), chord("G")]
        );
        // Every diatonic preset's chords lie in its key's scale.
        for (index, preset) in PRESETS
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.name.contains("bVII") && !p.name.contains("blues"))
        {
            let settings = HarmonySettings {
                key_root: 2,
                preset: index,
                scale_lock: true,
                played: None,
                typed: false,
            };
            let scale = settings.key().scale();
            for chord in settings.progression().chords() {
                assert_eq!(chord.0 & !scale.0, 0, "{} in D", preset.name);
            }
        }
    }

    #[test]
    fn the_default_progression_changes_chord_every_bar_over_four_bars() {
        let progression = default_progression();
        assert_eq!(progression.bars(), 4);
        let second_segment = progression.segment_chords(2);
        assert_eq!(progression.chord_at(15), Chord::major(0));
        assert_eq!(progression.chord_at(16), Chord::major(7));
        assert_eq!(second_segment[0], Chord::minor(9));
        assert_eq!(second_segment[31], Chord::major(5));
    }

    #[test]
    fn the_longer_presets_loop_over_eight_and_twelve_bars() {
        let lengths: Vec<usize> = PRESETS.iter().map(|p| p.in_key(0).bars()).collect();
        assert!(lengths.contains(&8) && lengths.contains(&12), "{lengths:?}");
        let blues = PRESETS.iter().find(|p| p.name.contains("blues")).unwrap();
        assert_eq!(
            blues.chord_names(7)[8..],
            ["D7", "C7", "G7", "D7"],
            "the turnaround in G"
        );
    }
}
