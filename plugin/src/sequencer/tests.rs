//! The sequencer driven like a host drives it, block by block.

use super::clock::Meter;
use super::*;
use crate::pattern::{Note, Phrase};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    On { sample: i64, channel: u8, pitch: u8 },
    Off { sample: i64, channel: u8, pitch: u8 },
}

/// Collects events with absolute sample times.
#[derive(Default)]
struct Recorder {
    block_start: i64,
    events: Vec<Event>,
    retired: Vec<u64>,
}

impl SequencerOutput for Recorder {
    fn note_on(&mut self, timing: u32, channel: u8, pitch: u8, _velocity: u8) {
        self.events.push(Event::On {
            sample: self.block_start + i64::from(timing),
            channel,
            pitch,
        });
    }
    fn note_off(&mut self, timing: u32, channel: u8, pitch: u8) {
        self.events.push(Event::Off {
            sample: self.block_start + i64::from(timing),
            channel,
            pitch,
        });
    }
    fn retire(&mut self, phrase: Box<Phrase>) {
        self.retired.push(phrase.request_id);
    }
}

impl Recorder {
    fn ons(&self) -> Vec<(i64, u8)> {
        self.events
            .iter()
            .filter_map(|e| match *e {
                Event::On { sample, pitch, .. } => Some((sample, pitch)),
                Event::Off { .. } => None,
            })
            .collect()
    }

    /// Every note-on has exactly one later note-off on the same key.
    fn assert_no_stuck_notes(&self) {
        let mut held: Vec<(u8, u8, i64)> = Vec::new();
        for event in &self.events {
            match *event {
                Event::On {
                    sample,
                    channel,
                    pitch,
                } => {
                    assert!(
                        !held.iter().any(|&(c, p, _)| c == channel && p == pitch),
                        "key {pitch} struck twice without release at {sample}"
                    );
                    held.push((channel, pitch, sample));
                }
                Event::Off {
                    sample,
                    channel,
                    pitch,
                } => {
                    let index = held
                        .iter()
                        .position(|&(c, p, _)| c == channel && p == pitch)
                        .unwrap_or_else(|| panic!("note-off for silent key {pitch} at {sample}"));
                    assert!(held[index].2 <= sample, "note-off before its note-on");
                    held.remove(index);
                }
            }
        }
        assert!(held.is_empty(), "stuck notes: {held:?}");
    }
}

/// A phrase whose drums play `pitch` on every quarter note of both bars and
/// whose bass holds one note per bar.
fn phrase(id: u64, pitch: u8) -> Box<Phrase> {
    let mut phrase = Box::<Phrase>::default();
    phrase.request_id = id;
    for step in (0..32).step_by(4) {
        phrase.part_mut(Part::Drums).push(Note {
            step,
            length_steps: 1,
            pitch,
            velocity: 100,
            offset: 0,
        });
    }
    for step in [0, 16] {
        phrase.part_mut(Part::Bass).push(Note {
            step,
            length_steps: 16,
            pitch: 40 + (step / 16) as u8,
            velocity: 100,
            offset: 0,
        });
    }
    phrase
}

const RATE: f64 = 48_000.0;
/// 120 BPM at 48 kHz: a 16th is 6000 samples, a 4/4 bar 96 000.
const STEP: i64 = 6000;
const BAR: i64 = 16 * STEP;

fn routing() -> [PartRouting; 3] {
    [
        PartRouting {
            enabled: true,
            channel: 9,
        },
        PartRouting {
            enabled: true,
            channel: 1,
        },
        PartRouting {
            enabled: true,
            channel: 0,
        },
    ]
}

/// Drives a sequencer like a host with a steady transport.
struct Host {
    sequencer: Sequencer,
    recorder: Recorder,
    /// Song position in samples (jumps with loops).
    sample: i64,
    /// Samples processed so far (never jumps); event times use it.
    wall: i64,
    input: BlockInput,
}

impl Host {
    fn new() -> Self {
        Host {
            sequencer: Sequencer::default(),
            recorder: Recorder::default(),
            sample: 0,
            wall: 0,
            input: BlockInput {
                samples: 512,
                sample_rate: RATE,
                playing: true,
                tempo: Some(120.0),
                position_quarters: Some(0.0),
                bar_start_quarters: None,
                loop_quarters: None,
                meter: Meter::default(),
                change_every_bars: 1,
                routing: routing(),
                bypassed: false,
            },
        }
    }

    /// Runs blocks until `until` (absolute sample), the song position
    /// following the sample counter.
    fn run_until(&mut self, until: i64) {
        while self.sample < until {
            let samples = (until - self.sample).min(i64::from(self.input.samples)) as u32;
            self.block(samples);
        }
    }

    fn block(&mut self, samples: u32) {
        let spq = RATE * 60.0 / self.input.tempo.unwrap();
        let input = BlockInput {
            samples,
            position_quarters: Some(self.sample as f64 / spq),
            ..self.input
        };
        self.recorder.block_start = self.wall;
        self.sequencer.process(&input, &mut self.recorder);
        self.sample += i64::from(samples);
        self.wall += i64::from(samples);
    }

    fn offer(&mut self, phrase: Box<Phrase>) {
        self.sequencer.offer(phrase, &mut self.recorder);
    }
}

#[test]
fn steady_play_puts_every_note_on_its_16th() {
    let mut host = Host::new();
    host.offer(phrase(1, 36));
    host.run_until(4 * BAR);
    let drums: Vec<i64> = host
        .recorder
        .ons()
        .iter()
        .filter(|o| o.1 == 36)
        .map(|o| o.0)
        .collect();
    let expected: Vec<i64> = (0..16).map(|beat| beat * 4 * STEP).collect();
    assert_eq!(drums, expected);
    host.input.playing = false;
    host.block(512);
    host.recorder.assert_no_stuck_notes();
}

#[test]
fn a_new_phrase_starts_exactly_on_the_next_bar_line() {
    let mut host = Host::new();
    host.offer(phrase(1, 36));
    host.run_until(BAR + 5 * STEP); // into the second bar
    host.offer(phrase(2, 38));
    host.run_until(4 * BAR);
    let ons = host.recorder.ons();
    let last_old = ons.iter().filter(|o| o.1 == 36).map(|o| o.0).max().unwrap();
    let first_new = ons.iter().filter(|o| o.1 == 38).map(|o| o.0).min().unwrap();
    assert_eq!(
        last_old,
        2 * BAR - 4 * STEP,
        "the old phrase finishes its bar"
    );
    assert_eq!(first_new, 2 * BAR, "the new phrase starts on the bar line");
    assert_eq!(host.recorder.retired, vec![1]);
}

#[test]
fn quantization_holds_a_change_until_its_2_or_4_bar_line() {
    for (every, expected_bar) in [(2, 2), (4, 4)] {
        let mut host = Host::new();
        host.input.change_every_bars = every;
        host.offer(phrase(1, 36));
        host.run_until(BAR / 2);
        host.offer(phrase(2, 38));
        host.run_until(6 * BAR);
        let first_new = host
            .recorder
            .ons()
            .iter()
            .filter(|o| o.1 == 38)
            .map(|o| o.0)
            .min();
        assert_eq!(first_new, Some(expected_bar * BAR), "every {every} bars");
    }
}

#[test]
fn a_newer_phrase_replaces_one_still_waiting() {
    let mut host = Host::new();
    host.offer(phrase(1, 36));
    host.run_until(STEP);
    host.offer(phrase(2, 38));
    host.offer(phrase(3, 42));
    host.run_until(2 * BAR);
    assert_eq!(host.recorder.retired, vec![2, 1]);
    assert!(host.recorder.ons().iter().all(|o| o.1 != 38));
    assert_eq!(host.sequencer.newest_phrase_id(), Some(3));
}

#[test]
fn stopping_ends_every_note_and_nothing_plays_while_stopped() {
    let mut host = Host::new();
    host.offer(phrase(1, 36));
    host.run_until(BAR + 3 * STEP); // bass note held
    host.input.playing = false;
    let before = host.recorder.events.len();
    host.run_until(3 * BAR);
    let after_stop = &host.recorder.events[before..];
    assert!(after_stop.iter().all(|e| matches!(e, Event::Off { .. })));
    host.recorder.assert_no_stuck_notes();
}

#[test]
fn a_loop_jump_ends_held_notes_and_restarts_on_the_loop_start() {
    let mut host = Host::new();
    host.offer(phrase(1, 36));
    host.run_until(2 * BAR - 2 * STEP); // the second bar's bass note is held
    let jump = host.wall;
    host.sample = 0; // the host loops back to bar 1
    host.run_until(STEP);
    let at_jump: Vec<Event> = host
        .recorder
        .events
        .iter()
        .copied()
        .filter(|e| match *e {
            Event::On { sample, .. } | Event::Off { sample, .. } => sample == jump,
        })
        .collect();
    assert_eq!(
        at_jump,
        vec![
            Event::Off {
                sample: jump,
                channel: 1,
                pitch: 41
            },
            Event::On {
                sample: jump,
                channel: 9,
                pitch: 36
            },
            Event::On {
                sample: jump,
                channel: 1,
                pitch: 40
            },
        ],
        "the held note ends, then the loop start plays its first bar"
    );
    host.input.playing = false;
    host.block(64);
    host.recorder.assert_no_stuck_notes();
}

#[test]
fn three_four_bars_play_the_first_twelve_steps_and_keep_bar_lines() {
    let mut host = Host::new();
    host.input.meter = Meter::from_host(Some(3), Some(4));
    host.offer(phrase(1, 36));
    host.run_until(2 * 12 * STEP);
    let drums: Vec<i64> = host
        .recorder
        .ons()
        .iter()
        .filter(|o| o.1 == 36)
        .map(|o| o.0)
        .collect();
    // Quarters 0, 4, 8 of each 12-step bar.
    assert_eq!(
        drums,
        vec![0, 4 * STEP, 8 * STEP, 12 * STEP, 16 * STEP, 20 * STEP]
    );
    let bass: Vec<(i64, u8)> = host
        .recorder
        .ons()
        .into_iter()
        .filter(|o| o.1 == 40 || o.1 == 41)
        .collect();
    assert_eq!(
        bass,
        vec![(0, 40), (12 * STEP, 41)],
        "each bar starts its own phrase bar"
    );
    host.input.playing = false;
    host.block(64);
    host.recorder.assert_no_stuck_notes();
}

#[test]
fn muting_a_part_silences_it_from_the_next_bar_line() {
    let mut host = Host::new();
    host.offer(phrase(1, 36));
    host.run_until(STEP);
    host.input.routing[Part::Drums.index()].enabled = false;
    host.run_until(2 * BAR);
    let drums: Vec<i64> = host
        .recorder
        .ons()
        .iter()
        .filter(|o| o.1 == 36)
        .map(|o| o.0)
        .collect();
    assert_eq!(drums, vec![0, 4 * STEP, 8 * STEP, 12 * STEP]);
}

#[test]
fn every_block_size_gives_the_same_notes() {
    let reference = {
        let mut host = Host::new();
        host.offer(phrase(1, 36));
        host.run_until(2 * BAR);
        host.recorder.events
    };
    for size in [1u32, 7, 64, 4096] {
        let mut host = Host::new();
        host.input.samples = size;
        host.offer(phrase(1, 36));
        host.run_until(2 * BAR);
        assert_eq!(host.recorder.events, reference, "block size {size}");
    }
}

#[test]
fn reset_releases_held_notes_on_the_next_block() {
    let mut host = Host::new();
    host.offer(phrase(1, 36));
    host.run_until(3 * STEP);
    assert!(host.sequencer.is_sounding());
    host.sequencer.reset();
    host.input.playing = false;
    host.block(32);
    assert!(!host.sequencer.is_sounding());
    host.recorder.assert_no_stuck_notes();
}

#[test]
fn the_next_change_point_is_the_next_bar_line_the_change_setting_allows() {
    let mut host = Host::new();
    assert_eq!(host.sequencer.next_change(), None, "stopped: none");
    host.offer(phrase(1, 36));
    host.run_until(BAR / 2);
    assert_eq!(host.sequencer.next_change(), Some(4.0), "next bar: bar 1");
    assert_eq!(host.sequencer.next_change_bar(), 1);
    host.input.change_every_bars = 4;
    host.run_until(BAR + BAR / 2);
    assert_eq!(host.sequencer.next_change(), Some(16.0), "every 4: bar 4");
    // The worker keeps a long phrase's bars before it (0-3) as they were.
    assert_eq!(host.sequencer.next_change_bar(), 4);
    host.run_until(4 * BAR - STEP);
    assert_eq!(
        host.sequencer.next_change(),
        Some(16.0),
        "a bar line not yet looked at is still ahead"
    );
    host.run_until(4 * BAR);
    assert_eq!(
        host.sequencer.next_change(),
        Some(32.0),
        "a third of a 16th before it, the bar line was taken up"
    );
    host.input.meter = Meter::from_host(Some(3), Some(4));
    host.input.change_every_bars = 2;
    host.run_until(4 * BAR + 100);
    // 3/4 bars from the host-less grid: bar 5 starts at 15 quarters, so the
    // next even bar (6) starts at 18.
    assert_eq!(host.sequencer.next_change(), Some(18.0));
    assert_eq!(host.sequencer.next_change_bar(), 6);
    host.input.playing = false;
    host.block(64);
    assert_eq!(host.sequencer.next_change(), None, "a stop clears it");
}

/// A phrase of `bars` bars whose bass plays pitch `base` + bar on each
/// bar's downbeat.
fn long_phrase(id: u64, bars: usize, base: u8) -> Box<Phrase> {
    let mut phrase = Box::new(Phrase {
        request_id: id,
        bars,
        ..Phrase::default()
    });
    for bar in 0..bars {
        phrase.part_mut(Part::Bass).push(Note {
            step: (bar * 16) as u16,
            length_steps: 4,
            pitch: base + bar as u8,
            velocity: 100,
            offset: 0,
        });
    }
    phrase
}

/// The bass pitch struck on each bar line up to `bars`.
fn bar_pitches(host: &Host, bars: i64) -> Vec<u8> {
    (0..bars)
        .map(|bar| {
            host.recorder
                .ons()
                .iter()
                .find(|&&(sample, _)| sample == bar * BAR)
                .map_or(0, |&(_, pitch)| pitch)
        })
        .collect()
}

#[test]
fn song_bar_n_plays_bar_n_mod_n_of_a_long_phrase() {
    for bars in [3, 4, 12, 16] {
        let mut host = Host::new();
        host.offer(long_phrase(1, bars, 40));
        host.run_until(20 * BAR);
        let expected: Vec<u8> = (0..20).map(|bar| 40 + (bar % bars) as u8).collect();
        assert_eq!(bar_pitches(&host, 20), expected, "{bars} bars");
        host.input.playing = false;
        host.block(512);
        host.recorder.assert_no_stuck_notes();
    }
}

#[test]
fn a_long_phrase_taking_over_mid_phrase_plays_from_the_song_bar_it_lands_on() {
    let mut host = Host::new();
    host.offer(long_phrase(1, 4, 40));
    host.run_until(BAR + STEP);
    // An 8-bar phrase waits for bar 3 (song bar 2, counted from 0) and
    // plays its own bar 2 there, so it stays aligned with song bar 1.
    host.offer(long_phrase(2, 8, 60));
    host.run_until(10 * BAR);
    assert_eq!(
        bar_pitches(&host, 10),
        [40, 41, 62, 63, 64, 65, 66, 67, 60, 61]
    );
}

/// The rest of `phrase`: the same request, its bars from `from_bar` on
/// written by the bass from pitch `base` + bar.
fn rest_of(phrase: &Phrase, from_bar: usize, base: u8) -> Box<Phrase> {
    let mut rest = long_phrase(phrase.request_id, phrase.bars, 0);
    rest.completes_previous = true;
    let bass = rest.part_mut(Part::Bass);
    bass.clear();
    for note in phrase.part(Part::Bass).notes() {
        let bar = usize::from(note.step) / 16;
        bass.push(Note {
            pitch: if bar < from_bar {
                note.pitch
            } else {
                base + bar as u8
            },
            ..*note
        });
    }
    rest
}

#[test]
fn the_rest_of_the_playing_phrase_takes_over_at_once_mid_phrase() {
    let mut host = Host::new();
    host.input.change_every_bars = 4;
    host.offer(long_phrase(1, 16, 40));
    host.run_until(BAR + STEP);
    // Its rest comes in bar 2: bars 3-16 are heard from it, without waiting
    // for the bar-4 change point.
    let rest = rest_of(&long_phrase(1, 16, 40), 2, 60);
    host.offer(rest);
    host.run_until(6 * BAR);
    assert_eq!(bar_pitches(&host, 6), [40, 41, 62, 63, 64, 65]);
    assert_eq!(host.recorder.retired, vec![1], "the first part went back");
    host.input.playing = false;
    host.block(512);
    host.recorder.assert_no_stuck_notes();
}

#[test]
fn the_rest_of_a_waiting_phrase_waits_in_its_place_and_a_stale_rest_is_dropped() {
    let mut host = Host::new();
    host.offer(long_phrase(1, 16, 40));
    host.run_until(STEP);
    let waiting = long_phrase(2, 16, 50);
    host.offer(rest_of(&long_phrase(5, 16, 0), 0, 20));
    assert_eq!(
        host.recorder.retired,
        vec![5],
        "the rest of a phrase not held"
    );
    host.offer(rest_of(&waiting, 2, 70));
    host.offer(waiting);
    host.offer(rest_of(&long_phrase(2, 16, 50), 2, 70));
    host.run_until(4 * BAR);
    assert_eq!(bar_pitches(&host, 4), [40, 51, 72, 73]);
    assert_eq!(host.recorder.retired, vec![5, 2, 2, 1]);
}

/// A 2-bar phrase whose drums hit `pitch` on every 8th, each `offset`
/// 48ths of a 16th off the grid (alternately early and late when
/// `alternate`).
fn phrase_off_the_grid(id: u64, pitch: u8, offset: i8, alternate: bool) -> Box<Phrase> {
    let mut phrase = Box::<Phrase>::default();
    phrase.request_id = id;
    for (index, step) in (0..32).step_by(2).enumerate() {
        let sign = if alternate && index % 2 == 1 { -1 } else { 1 };
        phrase.part_mut(Part::Drums).push(Note {
            step,
            length_steps: 1,
            pitch,
            velocity: 100,
            offset: offset * sign,
        });
    }
    phrase
}

#[test]
fn notes_off_the_grid_sound_at_their_offset_and_keep_their_length() {
    for block in [64, 512, 1000, 6000] {
        let mut host = Host::new();
        host.input.samples = block;
        // A third of a 16th early on even 8ths, late on odd ones.
        host.offer(phrase_off_the_grid(1, 36, -16, true));
        host.run_until(4 * BAR);
        host.input.playing = false;
        host.block(64);
        host.recorder.assert_no_stuck_notes();
        let ons = host.recorder.ons();
        let third = STEP / 3;
        // The 33rd is bar 5's first hit, sent before bar 5's line.
        let expected: Vec<i64> = (0..33)
            .map(|eighth| {
                let on = eighth * 2 * STEP;
                if eighth % 2 == 0 {
                    on - third
                } else {
                    on + third
                }
            })
            // Nothing before the song start: the first early hit waits for it.
            .map(|sample| sample.max(0))
            .collect();
        assert_eq!(
            ons.iter().map(|o| o.0).collect::<Vec<_>>(),
            expected,
            "block {block}"
        );
        // Each hit lasts its 16th, whichever way it moved.
        let offs: Vec<i64> = host
            .recorder
            .events
            .iter()
            .filter_map(|e| match *e {
                Event::Off { sample, .. } => Some(sample),
                Event::On { .. } => None,
            })
            .collect();
        for (on, off) in expected.iter().zip(&offs).take(32).skip(1) {
            assert_eq!(off - on, STEP, "block {block}");
        }
    }
}

#[test]
fn an_early_note_of_a_new_phrase_goes_out_before_its_bar_line() {
    let mut host = Host::new();
    host.offer(phrase(1, 36));
    host.run_until(BAR + 5 * STEP);
    host.offer(phrase_off_the_grid(2, 38, -16, false));
    // Blocks that end just before the bar line and just after it.
    host.input.samples = 1000;
    host.run_until(4 * BAR);
    host.input.playing = false;
    host.block(64);
    host.recorder.assert_no_stuck_notes();
    let ons = host.recorder.ons();
    let first_new = ons.iter().filter(|o| o.1 == 38).map(|o| o.0).min();
    assert_eq!(
        first_new,
        Some(2 * BAR - STEP / 3),
        "a third of a 16th before the bar line it belongs to"
    );
    let last_old = ons.iter().filter(|o| o.1 == 36).map(|o| o.0).max();
    assert_eq!(
        last_old,
        Some(2 * BAR - 4 * STEP),
        "the old phrase ends its bar"
    );
}

#[test]
fn events_go_out_in_time_order_within_every_block() {
    let mut host = Host::new();
    host.input.samples = 7000;
    let mut phrase = phrase_off_the_grid(1, 36, 16, false);
    // A snare a third early on every 16th after a late kick: they cross.
    for step in (1..32).step_by(2) {
        let snare = Note {
            step,
            length_steps: 1,
            pitch: 38,
            velocity: 90,
            offset: -16,
        };
        let notes: Vec<Note> = phrase.part(Part::Drums).notes().to_vec();
        let part = phrase.part_mut(Part::Drums);
        part.clear();
        for note in notes.into_iter().chain([snare]) {
            part.push(note);
        }
    }
    host.offer(phrase);
    let mut last_block_start = 0;
    for _ in 0..40 {
        let before = host.recorder.events.len();
        host.block(7000);
        let times: Vec<i64> = host.recorder.events[before..]
            .iter()
            .map(|e| match *e {
                Event::On { sample, .. } | Event::Off { sample, .. } => sample,
            })
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        assert!(
            times
                .iter()
                .all(|&t| t >= last_block_start && t < host.wall)
        );
        last_block_start = host.wall;
    }
}
