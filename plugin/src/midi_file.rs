//! Standard MIDI files (`midly`): what the CLI renders and what a musician
//! drags into their DAW.

use std::path::{Path, PathBuf};

use midly::num::{u4, u7, u15, u24, u28};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};
use thiserror::Error;

use crate::sequencer::clock::Meter;

/// Ticks per quarter note of the files we write (a 16th is 120 ticks).
pub const TICKS_PER_QUARTER: u16 = 480;

/// A .mid file could not be written or read.
#[derive(Debug, Error)]
pub enum MidiFileError {
    /// The file system refused.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A note event at an absolute tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedNote {
    /// Ticks from the start of the file.
    pub tick: u64,
    /// 0-based MIDI channel.
    pub channel: u8,
    /// MIDI key.
    pub pitch: u8,
    /// Velocity; 0 means note-off.
    pub velocity: u8,
}

/// One track: a part's name and its events in time order.
pub struct Track {
    /// Track name shown by DAWs.
    pub name: String,
    /// Note-ons (velocity > 0) and note-offs (velocity 0), sorted by tick.
    pub notes: Vec<TimedNote>,
}

/// Writes a format-1 file: a tempo/meter track, then one track per part.
pub fn write(
    path: &Path,
    tempo_bpm: f64,
    meter: Meter,
    tracks: &[Track],
) -> Result<(), MidiFileError> {
    let micros_per_quarter = (60_000_000.0 / tempo_bpm).round().clamp(1.0, 16_777_215.0) as u32;
    let mut conductor = vec![
        meta(0, MetaMessage::TrackName(b"Latent Trio")),
        meta(0, MetaMessage::Tempo(u24::new(micros_per_quarter))),
        meta(
            0,
            MetaMessage::TimeSignature(
                meter.numerator as u8,
                meter.denominator.trailing_zeros() as u8,
                24,
                8,
            ),
        ),
    ];
    conductor.push(meta(0, MetaMessage::EndOfTrack));
    let mut smf_tracks = vec![conductor];
    for track in tracks {
        let mut events = vec![meta(0, MetaMessage::TrackName(track.name.as_bytes()))];
        let mut last = 0u64;
        for note in &track.notes {
            let delta = note.tick.saturating_sub(last).min(0x0FFF_FFFF) as u32;
            last = note.tick.max(last);
            let message = if note.velocity > 0 {
                MidiMessage::NoteOn {
                    key: u7::new(note.pitch & 0x7F),
                    vel: u7::new(note.velocity.min(127)),
                }
            } else {
                MidiMessage::NoteOff {
                    key: u7::new(note.pitch & 0x7F),
                    vel: u7::new(0),
                }
            };
            events.push(TrackEvent {
                delta: u28::new(delta),
                kind: TrackEventKind::Midi {
                    channel: u4::new(note.channel & 0x0F),
                    message,
                },
            });
        }
        events.push(meta(0, MetaMessage::EndOfTrack));
        smf_tracks.push(events);
    }
    let smf = Smf {
        header: Header::new(
            Format::Parallel,
            Timing::Metrical(u15::new(TICKS_PER_QUARTER)),
        ),
        tracks: smf_tracks,
    };
    smf.save(path).map_err(|source| MidiFileError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn meta(delta: u32, message: MetaMessage<'_>) -> TrackEvent<'_> {
    TrackEvent {
        delta: u28::new(delta),
        kind: TrackEventKind::Meta(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_reads_back_with_its_tempo_meter_and_notes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("song.mid");
        let notes = vec![
            TimedNote {
                tick: 0,
                channel: 9,
                pitch: 36,
                velocity: 110,
            },
            TimedNote {
                tick: 120,
                channel: 9,
                pitch: 36,
                velocity: 0,
            },
            TimedNote {
                tick: 480,
                channel: 9,
                pitch: 38,
                velocity: 96,
            },
            TimedNote {
                tick: 600,
                channel: 9,
                pitch: 38,
                velocity: 0,
            },
        ];
        let meter = Meter::from_host(Some(7), Some(8));
        write(
            &path,
            93.0,
            meter,
            &[Track {
                name: "Drums".into(),
                notes,
            }],
        )
        .unwrap();

        let bytes = std::fs::read(&path).unwrap();
        let smf = Smf::parse(&bytes).unwrap();
        assert_eq!(smf.tracks.len(), 2);
        let conductor = &smf.tracks[0];
        assert!(
            conductor
                .iter()
                .any(|e| e.kind == TrackEventKind::Meta(MetaMessage::Tempo(u24::new(645_161))))
        );
        assert!(conductor.iter().any(|e| matches!(
            e.kind,
            TrackEventKind::Meta(MetaMessage::TimeSignature(7, 3, _, _))
        )));
        let mut tick = 0u32;
        let mut ons = Vec::new();
        for event in &smf.tracks[1] {
            tick += event.delta.as_int();
            if let TrackEventKind::Midi {
                channel,
                message: MidiMessage::NoteOn { key, .. },
            } = event.kind
            {
                ons.push((tick, channel.as_int(), key.as_int()));
            }
        }
        assert_eq!(ons, vec![(0, 9, 36), (480, 9, 38)]);
    }
}
