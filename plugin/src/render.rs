//! Offline rendering without a host: decode with the engine, play the phrase
//! through the same [`Sequencer`] the plugin uses, and collect the notes per
//! part. The CLI writes the result to a .mid file; because the sequencer is
//! the plugin's own, the file holds the notes the plugin plays for the same
//! seed and knobs.

use crate::engine::{Engine, ModelError, harmony};
use crate::harmony::Progression;
use crate::knobs::KnobSnapshot;
use crate::midi_file::{TICKS_PER_QUARTER, TimedNote, Track};
use crate::pattern::{MAX_OFFSET, Note, OFFSET_UNITS_PER_STEP, Part, Phrase};
use crate::sequencer::clock::Meter;
use crate::sequencer::{BlockInput, PartRouting, Sequencer, SequencerOutput};
use crate::stored::StoredLatents;

/// What to render.
#[derive(Debug, Clone)]
pub struct RenderSettings {
    /// Bars to render.
    pub bars: u32,
    /// Tempo in BPM (written to the file; the notes are on the grid).
    pub tempo: f64,
    /// Time signature.
    pub meter: Meter,
    /// Parts to render, each with its 0-based MIDI channel.
    pub parts: Vec<(Part, u8)>,
    /// Phrases one after another, each `bars` long, decoded with the seeds
    /// `seed`, `seed + 1`, ...: variations of the same latent.
    pub variations: u32,
    /// Adds a track of the chords bass and melody followed, as block
    /// chords on this 0-based channel.
    pub chords_channel: Option<u8>,
}

/// The chords track's 0-based channel (4): the first the parts leave free.
pub const CHORDS_CHANNEL: u8 = 3;

/// Where the chords track voices its chords: the octave from middle C up.
const CHORD_OCTAVE: u8 = 60;

struct TickRecorder {
    block_start: u64,
    notes: Vec<TimedNote>,
}

impl SequencerOutput for TickRecorder {
    fn note_on(&mut self, timing: u32, channel: u8, pitch: u8, velocity: u8) {
        self.notes.push(TimedNote {
            tick: self.block_start + u64::from(timing),
            channel,
            pitch,
            velocity: velocity.max(1),
        });
    }
    fn note_off(&mut self, timing: u32, channel: u8, pitch: u8) {
        self.notes.push(TimedNote {
            tick: self.block_start + u64::from(timing),
            channel,
            pitch,
            velocity: 0,
        });
    }
    fn retire(&mut self, _phrase: Box<Phrase>) {}
}

/// Decodes `knobs` (with the stored clips and scenes) and plays
/// `settings.bars` bars of each variation; one track per part.
pub fn render(
    engine: &mut Engine,
    knobs: &KnobSnapshot,
    stored: &StoredLatents,
    settings: &RenderSettings,
) -> Result<Vec<Track>, ModelError> {
    let mut tracks: Vec<Track> = settings
        .parts
        .iter()
        .map(|&(part, _)| Track {
            name: part.title().into(),
            notes: Vec::new(),
        })
        .chain(settings.chords_channel.map(|_| Track {
            name: "Chords".into(),
            notes: Vec::new(),
        }))
        .collect();
    let ticks_per_variation = (f64::from(settings.bars)
        * settings.meter.bar_quarters()
        * f64::from(TICKS_PER_QUARTER)) as u64;
    let mut phrase = Box::<Phrase>::default();
    for variation in 0..settings.variations.max(1) {
        let knobs = KnobSnapshot {
            seed: knobs.seed.wrapping_add(variation),
            ..*knobs
        };
        engine.decode(&knobs, stored, &mut phrase, None).result()?;
        let start = u64::from(variation) * ticks_per_variation;
        let played = phrase_tracks(&phrase, &harmony(&knobs, stored).0, settings);
        for (track, played) in tracks.iter_mut().zip(played) {
            track
                .notes
                .extend(played.notes.into_iter().map(|note| TimedNote {
                    tick: note.tick + start,
                    ..note
                }));
        }
    }
    Ok(tracks)
}

/// `settings.bars` bars of `phrase` as the plugin plays them; one track per
/// part, and one of the `progression` followed if `settings` asks for it
/// (what the editor exports).
pub fn phrase_tracks(
    phrase: &Phrase,
    progression: &Progression,
    settings: &RenderSettings,
) -> Vec<Track> {
    let parts = settings.parts.iter().map(|&(part, channel)| Track {
        name: part.title().into(),
        notes: play_part(phrase, part, channel, settings),
    });
    let chords = settings.chords_channel.map(|channel| Track {
        name: "Chords".into(),
        notes: chord_notes(progression, phrase.bars, channel, settings),
    });
    parts.chain(chords).collect()
}

/// The progression as block chords over a phrase of `bars` bars, played by
/// the sequencer like a part (so that they fall on the bars exactly as the
/// notes they were followed by do).
fn chord_notes(
    progression: &Progression,
    bars: usize,
    channel: u8,
    settings: &RenderSettings,
) -> Vec<TimedNote> {
    let mut phrase = Phrase {
        bars,
        ..Phrase::default()
    };
    let steps = phrase.steps();
    let mut step = 0;
    while step < steps {
        let chord = progression.chord_at(step);
        let length = (step..steps)
            .take_while(|&s| progression.chord_at(s) == chord)
            .count()
            .min(usize::from(u8::MAX));
        for pitch in (CHORD_OCTAVE..CHORD_OCTAVE + 12).filter(|&pitch| chord.contains(pitch)) {
            phrase.part_mut(Part::Melody).push(Note {
                step: step as u16,
                length_steps: length as u8,
                pitch,
                velocity: CHORD_VELOCITY,
                offset: 0,
            });
        }
        step += length;
    }
    play_part(&phrase, Part::Melody, channel, settings)
}

/// Chords sit behind the parts.
const CHORD_VELOCITY: u8 = 70;

/// The events the sequencer plays for one part of `phrase`, in ticks.
pub fn play_part(
    phrase: &Phrase,
    part: Part,
    channel: u8,
    settings: &RenderSettings,
) -> Vec<TimedNote> {
    // Run the sequencer at one "sample" per tick: every 16th lands exactly
    // on a tick and nothing needs rounding.
    let ticks_per_quarter = f64::from(TICKS_PER_QUARTER);
    let routing = Part::ALL.map(|p| PartRouting {
        enabled: p == part,
        channel,
    });
    let mut sequencer = Sequencer::default();
    let mut recorder = TickRecorder {
        block_start: 0,
        notes: Vec::new(),
    };
    sequencer.offer(Box::new(phrase.clone()), &mut recorder);
    let total =
        (f64::from(settings.bars) * settings.meter.bar_quarters() * ticks_per_quarter) as u64;
    let block = u64::from(TICKS_PER_QUARTER);
    let mut input = BlockInput {
        samples: TICKS_PER_QUARTER.into(),
        sample_rate: settings.tempo / 60.0 * ticks_per_quarter,
        playing: true,
        tempo: Some(settings.tempo),
        position_quarters: Some(0.0),
        bar_start_quarters: None,
        loop_quarters: None,
        meter: settings.meter,
        change_every_bars: 1,
        routing,
        bypassed: false,
    };
    while recorder.block_start < total {
        input.samples = (total - recorder.block_start).min(block) as u32;
        input.position_quarters = Some(recorder.block_start as f64 / ticks_per_quarter);
        sequencer.process(&input, &mut recorder);
        recorder.block_start += u64::from(input.samples);
    }
    // The song ends: the transport stops and every note ends.
    input.playing = false;
    sequencer.process(&input, &mut recorder);
    without_the_next_bar(recorder.notes, total)
}

/// `notes` without those of the bar after the end: an early note of its
/// first 16th is sent up to a third of a 16th before the end, and a file
/// that loops would play it twice. No note of the last 16th starts that
/// late (a late one starts at most a third after its 16th).
fn without_the_next_bar(notes: Vec<TimedNote>, end: u64) -> Vec<TimedNote> {
    let ticks_per_step = u64::from(TICKS_PER_QUARTER) / 4;
    let cut = end - ticks_per_step * MAX_OFFSET as u64 / OFFSET_UNITS_PER_STEP as u64;
    let mut dropped: Vec<(u8, u8)> = Vec::new();
    notes
        .into_iter()
        .filter(|note| {
            let key = (note.channel, note.pitch);
            if note.velocity > 0 && note.tick >= cut {
                dropped.push(key);
                return false;
            }
            match dropped.iter().position(|&k| k == key) {
                Some(index) if note.velocity == 0 => {
                    dropped.swap_remove(index);
                    false
                }
                _ => true,
            }
        })
        .collect()
}
