//! A musician's .mid clip -> one window of model tokens (2 bars; up to 16
//! for a clip whose structure the melody follows), so the encoder can find
//! the clip's latent ("MIDI in").
//!
//! Rules: ticks-per-quarter timing; 4/4 only; drums come from channel 10
//! (or, in a file without channel 10, from notes the drum classes know);
//! bass and melody from every other channel, reduced to one line (the
//! lowest note of a chord for bass, the highest for melody) and folded by
//! octaves into the model's range. The window starts at the first bar with a
//! note; start times snap to the nearest 16th.

use std::io::Read;
use std::path::{Path, PathBuf};

use midly::{MetaMessage, MidiMessage, Smf, Timing, TrackEventKind};
use thiserror::Error;

use crate::engine::manifest::{FIRST_NOTE_ON_TOKEN, Vocabulary};
use crate::pattern::{MODEL_BARS, Part, STEPS_PER_BAR};

/// The General MIDI drum channel, 0-based.
const DRUM_CHANNEL: u8 = 9;

/// Why a clip cannot be used. Nothing changes when one is refused.
#[derive(Debug, Error)]
pub enum ClipError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A folder, a device or a pipe, not a file.
    #[error("this is not a regular file (a folder, device or pipe cannot be a clip)")]
    NotAFile,
    /// Far larger than any clip.
    #[error("the file is {bytes} bytes; a clip is at most 4 MiB")]
    TooLarge {
        /// The file's size.
        bytes: u64,
    },
    /// The bytes are not a (complete) standard MIDI file.
    #[error("this is not a MIDI file, or it is damaged ({0})")]
    NotMidi(String),
    /// SMPTE timing has no beats to put on a grid.
    #[error("the clip is timed in SMPTE frames, not beats; export it with bars and beats")]
    FrameTiming,
    /// Ticks per quarter of 0.
    #[error("the clip says a quarter note lasts 0 ticks")]
    NoTicksPerQuarter,
    /// Another time signature than 4/4 where the clip's notes are.
    #[error("the clip is in {numerator}/{denominator}; Latent Trio's models play 4/4 only")]
    NotFourFour {
        /// Beats per bar.
        numerator: u8,
        /// Beat unit.
        denominator: u32,
    },
    /// No note at all.
    #[error("the clip has no notes")]
    NoNotes,
    /// The notes belong to another part.
    #[error("this does not look like a {part} clip: {why}")]
    WrongPart {
        /// The part it was imported for.
        part: &'static str,
        /// What gave it away.
        why: String,
    },
}

/// A clip as the model reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// One token per 16th step of the window.
    pub tokens: Vec<i64>,
    /// Bars in the window: the bars asked for, or fewer where the clip's
    /// last note ends sooner.
    pub bars: u64,
    /// 0-based bar of the file where the window starts.
    pub first_bar: u64,
    /// Notes that made it into the tokens.
    pub notes_used: usize,
    /// Notes outside the window, of another part, or dropped to keep one line.
    pub notes_left_out: usize,
}

impl Clip {
    /// One plain sentence for the GUI: "bars 3-4, 14 notes (5 left out)".
    pub fn summary(&self) -> String {
        let mut text = format!(
            "bars {}-{}, {} notes",
            self.first_bar + 1,
            self.first_bar + self.bars,
            self.notes_used
        );
        if self.notes_left_out > 0 {
            text.push_str(&format!(" ({} left out)", self.notes_left_out));
        }
        text
    }
}

/// A note of the file, in 16th steps from the file start.
#[derive(Debug, Clone, Copy)]
struct ClipNote {
    channel: u8,
    pitch: u8,
    start: u64,
    end: u64,
}

/// Reads `path` as a 2-bar clip for `part`.
pub fn read_clip(path: &Path, part: Part, vocabulary: &Vocabulary) -> Result<Clip, ClipError> {
    read_clip_bars(path, part, vocabulary, MODEL_BARS as u64)
}

/// Reads `path` as a clip for `part` of up to `bars` bars (as many as its
/// notes fill, whole bars from the first with a note).
pub fn read_clip_bars(
    path: &Path,
    part: Part,
    vocabulary: &Vocabulary,
    bars: u64,
) -> Result<Clip, ClipError> {
    let unreadable = |source| ClipError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    // Only a regular file, and only a clip's worth of it: a FIFO would block
    // the worker forever, /dev/zero would fill the memory, and a huge file
    // is no clip.
    let metadata = std::fs::metadata(path).map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(ClipError::NotAFile);
    }
    if metadata.len() > MAX_CLIP_BYTES {
        return Err(ClipError::TooLarge {
            bytes: metadata.len(),
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_CLIP_BYTES + 1).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_CLIP_BYTES {
        return Err(ClipError::TooLarge {
            bytes: bytes.len() as u64,
        });
    }
    clip_window(&bytes, part, vocabulary, bars)
}

/// The largest .mid file read as a clip: a 2-bar clip is a few hundred
/// bytes, a whole song rarely more than a few hundred kilobytes.
pub const MAX_CLIP_BYTES: u64 = 4 * 1024 * 1024;

/// Reads the bytes of a .mid file as a 2-bar clip for `part`.
pub fn clip_from_bytes(
    bytes: &[u8],
    part: Part,
    vocabulary: &Vocabulary,
) -> Result<Clip, ClipError> {
    clip_window(bytes, part, vocabulary, MODEL_BARS as u64)
}

/// The bytes of a .mid file as a clip for `part` of up to `bars` bars.
fn clip_window(
    bytes: &[u8],
    part: Part,
    vocabulary: &Vocabulary,
    bars: u64,
) -> Result<Clip, ClipError> {
    // SMPTE timing (the top bit of the header's division) is refused before
    // midly reads it: midly 0.5 overflows on a frame rate of -128.
    if bytes.len() >= 14 && bytes.starts_with(b"MThd") && bytes[12] & 0x80 != 0 {
        return Err(ClipError::FrameTiming);
    }
    // Hostile bytes must never take the worker (or the host) down with them.
    let smf = std::panic::catch_unwind(|| Smf::parse(bytes))
        .map_err(|_| ClipError::NotMidi("the file's structure could not be read".into()))?
        .map_err(|error| ClipError::NotMidi(error.to_string()))?;
    let ticks_per_quarter = match smf.header.timing {
        Timing::Metrical(ticks) => u64::from(ticks.as_int()),
        Timing::Timecode(..) => return Err(ClipError::FrameTiming),
    };
    if ticks_per_quarter == 0 {
        return Err(ClipError::NoTicksPerQuarter);
    }
    let to_step = |tick: u64| (tick.saturating_mul(4) + ticks_per_quarter / 2) / ticks_per_quarter;

    let mut notes = Vec::new();
    // (step, numerator, denominator) of every time signature.
    let mut meters = Vec::new();
    for track in &smf.tracks {
        let mut tick = 0u64;
        // Sounding notes: (channel, pitch, start tick).
        let mut open: Vec<(u8, u8, u64)> = Vec::new();
        for event in track {
            tick = tick.saturating_add(u64::from(event.delta.as_int()));
            match event.kind {
                TrackEventKind::Meta(MetaMessage::TimeSignature(numerator, power, _, _)) => {
                    meters.push((to_step(tick), numerator, 1u32.checked_shl(power.into())));
                }
                TrackEventKind::Midi { channel, message } => {
                    let channel = channel.as_int();
                    let (key, on) = match message {
                        MidiMessage::NoteOn { key, vel } => (key.as_int(), vel.as_int() > 0),
                        MidiMessage::NoteOff { key, .. } => (key.as_int(), false),
                        _ => continue,
                    };
                    // A note struck again ends the one already sounding.
                    if let Some(index) = open.iter().position(|&(c, k, _)| c == channel && k == key)
                    {
                        let (_, _, start) = open.swap_remove(index);
                        notes.push(clip_note(channel, key, start, tick, &to_step));
                    }
                    if on {
                        open.push((channel, key, tick));
                    }
                }
                _ => {}
            }
        }
        for (channel, key, start) in open {
            notes.push(clip_note(channel, key, start, tick, &to_step));
        }
    }
    if notes.is_empty() {
        return Err(ClipError::NoNotes);
    }
    let total = notes.len();
    let selected = select_part(notes, part, vocabulary)?;
    let first_bar = selected
        .iter()
        .map(|note| note.start / STEPS_PER_BAR as u64)
        .min()
        .ok_or(ClipError::NoNotes)?;
    let window_start = first_bar * STEPS_PER_BAR as u64;
    // A 2-bar clip is always 2 bars; a longer one ends with the bar of its
    // last note (in whole bars, at least 2).
    let last_step = selected.iter().map(|note| note.start).max().unwrap_or(0);
    let filled = (last_step - window_start) / STEPS_PER_BAR as u64 + 1;
    let bars = if bars <= MODEL_BARS as u64 {
        bars
    } else {
        filled.clamp(MODEL_BARS as u64, bars)
    };
    let steps = (bars * STEPS_PER_BAR as u64) as usize;
    let window_end = window_start + steps as u64;
    if let Some(&(_, numerator, denominator)) = meters
        .iter()
        .filter(|(step, ..)| *step < window_end)
        .find(|(_, numerator, denominator)| (*numerator, *denominator) != (4, Some(4)))
    {
        return Err(ClipError::NotFourFour {
            numerator,
            denominator: denominator.unwrap_or(0),
        });
    }
    let in_window: Vec<ClipNote> = selected
        .into_iter()
        .filter(|note| note.start < window_end)
        .map(|note| ClipNote {
            start: note.start - window_start,
            end: note.end.min(window_end) - window_start,
            ..note
        })
        .collect();
    let (tokens, notes_used) = match vocabulary {
        Vocabulary::DrumClasses { classes, .. } => {
            let mut tokens = vec![0i64; steps];
            let mut used = 0;
            for note in &in_window {
                if let Some(bit) = classes.iter().position(|class| class.hears(note.pitch)) {
                    tokens[note.start as usize] |= 1 << bit;
                    used += 1;
                }
            }
            (tokens, used)
        }
        Vocabulary::Melodic {
            note_off,
            no_event,
            min_pitch,
            max_pitch,
            ..
        } => melodic_tokens(
            &in_window, steps, part, *note_off, *no_event, *min_pitch, *max_pitch,
        ),
    };
    if notes_used == 0 {
        return Err(ClipError::NoNotes);
    }
    Ok(Clip {
        tokens,
        bars,
        first_bar,
        notes_used,
        notes_left_out: total - notes_used,
    })
}

fn clip_note(
    channel: u8,
    pitch: u8,
    start: u64,
    end: u64,
    to_step: &impl Fn(u64) -> u64,
) -> ClipNote {
    let start = to_step(start);
    ClipNote {
        channel,
        pitch,
        start,
        end: to_step(end).max(start + 1),
    }
}

/// The notes of `part`, or why the clip is another part's.
fn select_part(
    notes: Vec<ClipNote>,
    part: Part,
    vocabulary: &Vocabulary,
) -> Result<Vec<ClipNote>, ClipError> {
    let on_drum_channel = notes.iter().filter(|n| n.channel == DRUM_CHANNEL).count();
    let wrong = |why: String| ClipError::WrongPart {
        part: part.name(),
        why,
    };
    match (part, vocabulary) {
        (Part::Drums, Vocabulary::DrumClasses { classes, .. }) => {
            if on_drum_channel > 0 {
                return Ok(notes
                    .into_iter()
                    .filter(|n| n.channel == DRUM_CHANNEL)
                    .collect());
            }
            let drum_sounds = notes
                .iter()
                .filter(|n| classes.iter().any(|class| class.hears(n.pitch)))
                .count();
            if drum_sounds * 2 < notes.len() {
                return Err(wrong(format!(
                    "nothing is on drum channel 10 and only {drum_sounds} of {} notes are drum sounds",
                    notes.len()
                )));
            }
            Ok(notes)
        }
        (Part::Bass | Part::Melody, Vocabulary::Melodic { .. }) => {
            if on_drum_channel == notes.len() {
                return Err(wrong("every note is on drum channel 10".into()));
            }
            Ok(notes
                .into_iter()
                .filter(|n| n.channel != DRUM_CHANNEL)
                .collect())
        }
        _ => Err(wrong("the model's vocabulary is for another part".into())),
    }
}

/// One line of notes as `steps` melodic tokens; returns the tokens and notes used.
fn melodic_tokens(
    notes: &[ClipNote],
    steps: usize,
    part: Part,
    note_off: i64,
    no_event: i64,
    min_pitch: u8,
    max_pitch: u8,
) -> (Vec<i64>, usize) {
    let mut line: Vec<ClipNote> = Vec::new();
    for note in notes {
        match line.iter_mut().find(|kept| kept.start == note.start) {
            // A chord: bass keeps its root-most note, melody its top.
            Some(kept) => {
                let better = match part {
                    Part::Bass => note.pitch < kept.pitch,
                    _ => note.pitch > kept.pitch,
                };
                if better {
                    *kept = *note;
                }
            }
            None => line.push(*note),
        }
    }
    line.sort_by_key(|note| note.start);
    let mut tokens = vec![no_event; steps];
    for (index, note) in line.iter().enumerate() {
        let mut pitch = note.pitch;
        while pitch < min_pitch && pitch <= 127 - 12 {
            pitch += 12;
        }
        while pitch > max_pitch && pitch >= 12 {
            pitch -= 12;
        }
        tokens[note.start as usize] =
            i64::from(pitch.clamp(min_pitch, max_pitch) - min_pitch) + FIRST_NOTE_ON_TOKEN;
        let next_start = line.get(index + 1).map_or(steps as u64, |n| n.start);
        if note.end < next_start && (note.end as usize) < steps {
            tokens[note.end as usize] = note_off;
        }
    }
    (tokens, line.len())
}
