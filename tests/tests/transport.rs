//! Everything a DAW's transport does to an instrument: stop, restart, loops,
//! locates, tempo ramps, meter changes, bypass, deactivation and sample-rate
//! changes. After each: no stuck note, no note-on off the grid, no panic.

use latent_trio_host::{
    Bundle, Chaos, HostProfile, Instance, NoteEvent, Song, check_balanced, clap_bundle,
};

fn playing(bundle: &Bundle) -> Instance {
    let mut instance = bundle.instantiate().unwrap();
    instance.activate(48_000.0, 4096);
    assert!(instance.warm_up(60.0), "the models load and play");
    instance
}

fn finish(instance: Instance, what: &str) -> Vec<NoteEvent> {
    finish_within(instance, what, 0.0)
}

/// Stops, checks every note ended, and that every note-on lies within
/// `from_grid` 16ths of the grid (0: exactly on it).
fn finish_within(mut instance: Instance, what: &str, from_grid: f64) -> Vec<NoteEvent> {
    instance.song.playing = false;
    instance.block(64);
    let events = std::mem::take(&mut instance.events);
    let notes = check_balanced(&events).unwrap_or_else(|e| panic!("{what}: {e}"));
    // A sample's width at the slowest tempo, for rounding to samples.
    let tolerance = 1e-3;
    let off_grid = events
        .iter()
        .filter(|e| {
            e.on && (if from_grid == 0.0 {
                !e.on_grid
            } else {
                e.from_grid > from_grid + tolerance
            })
        })
        .count();
    assert_eq!(off_grid, 0, "{what}: note-ons off the grid");
    assert!(notes > 0, "{what}: something played");
    events
}

#[test]
fn stopping_mid_note_and_restarting_leaves_nothing_hanging() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = playing(&bundle);
    // Play until a note is held, then stop right there.
    instance.play(96_000, 512);
    while check_balanced(&instance.events).is_ok() {
        instance.block(512);
    }
    instance.song.playing = false;
    instance.block(512);
    check_balanced(&instance.events).expect("stopping ends every note at once");
    let stop = instance.events.len();
    instance.play(48_000, 512);
    assert!(
        instance.events_since(stop).iter().all(|e| !e.on),
        "nothing starts while stopped"
    );
    instance.song.playing = true;
    instance.play(2 * 96_000, 512);
    finish(instance, "stop and restart");
}

#[test]
fn a_loop_plays_its_bars_again_on_the_grid() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = playing(&bundle);
    instance.song.looping = Some((4.0, 12.0)); // bars 2-3
    instance.song.locate(6.0);
    instance.play(6 * 96_000, 500);
    let events = finish(instance, "loop");
    // Each pass through the loop plays the same steps.
    let pass = |n: usize| -> Vec<(i64, u16)> {
        let mut steps: Vec<_> = events
            .iter()
            .filter(|e| e.on)
            .map(|e| (e.sample, e.step.unwrap(), e.key))
            .collect::<Vec<_>>()
            .chunk_by(|a, b| b.1 >= a.1)
            .nth(n)
            .map(|c| c.iter().map(|&(_, s, k)| (s, k)).collect())
            .unwrap_or_default();
        steps.sort();
        steps
    };
    assert_eq!(
        pass(1),
        pass(2),
        "two whole passes of the loop are identical"
    );
}

#[test]
fn locating_to_any_position_plays_on_from_there() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = playing(&bundle);
    for position in [13.37, 0.0, 2.25, 30.1, 4.0] {
        instance.song.locate(position);
        instance.play(60_000, 512);
    }
    finish(instance, "locate");
}

#[test]
fn a_tempo_ramp_keeps_every_note_on_the_grid() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = playing(&bundle);
    for block in 0..1500 {
        instance.song.tempo = 90.0 + f64::from(block) * 0.05;
        instance.block(256);
    }
    finish(instance, "tempo ramp");
}

#[test]
fn three_four_and_seven_eight_bars_start_on_their_bar_lines() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = playing(&bundle);
    for meter in [(3, 4), (7, 8)] {
        instance.song = Song {
            meter,
            ..Song::default()
        };
        let from = instance.events.len();
        instance.play_bars(6.0, 512);
        let steps_per_bar = i64::from(meter.0) * 16 / i64::from(meter.1);
        for event in instance.events_since(from).iter().filter(|e| e.on) {
            let in_bar = event.step.unwrap().rem_euclid(steps_per_bar);
            assert!(in_bar < steps_per_bar);
        }
        // A meter change in the middle of the song, at a bar line.
        instance.song.meter = (4, 4);
        instance.play_bars(1.0, 512);
    }
    finish(instance, "meter changes");
}

#[test]
fn bypass_silences_at_once_and_resumes_on_the_grid() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = playing(&bundle);
    instance.play(100_000, 512);
    instance.set("Bypass", 1.0);
    instance.block(512);
    let bypassed = instance.events.len();
    instance.play(96_000, 512);
    assert_eq!(instance.events.len(), bypassed, "silent while bypassed");
    instance.set("Bypass", 0.0);
    instance.play(96_000, 512);
    finish(instance, "bypass");
}

#[test]
fn deactivating_and_changing_the_sample_rate_mid_note_leaves_nothing_hanging() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = playing(&bundle);
    instance.play(96_000 + 5_000, 512);
    instance.deactivate();
    instance.activate(96_000.0, 2048);
    instance.play(4 * 96_000, 2048);
    instance.deactivate();
    instance.activate(44_100.0, 333);
    instance.play(2 * 88_200, 333);
    finish(instance, "deactivate and sample-rate change");
}

/// A tiny seeded generator so the chaos run is the same every time.
#[test]
fn ten_thousand_random_transport_moves_and_automations_never_hang_a_note() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = playing(&bundle);
    let automatable: Vec<_> = instance
        .params
        .iter()
        .filter(|p| p.name != "Run Models On" && p.name != "Bypass")
        .map(|p| (p.name.clone(), p.min, p.max))
        .collect();
    let mut chaos = Chaos(0x5EED_1234_ABCD_0001);
    let mut counts = [0usize; 9];
    for _ in 0..10_000 {
        let op = chaos.below(9) as usize;
        counts[op] += 1;
        match op {
            0 | 1 => {
                let frames = 1 + chaos.below(2048) as u32;
                instance.block(frames.min(4096));
            }
            2 => {
                instance.song.playing = !instance.song.playing;
                if !instance.song.playing {
                    instance.block(64);
                    check_balanced(&instance.events).expect("a stop ends every note at once");
                }
            }
            // Now and then into a pre-roll before the song start.
            3 => instance.song.locate(chaos.unit() * 68.0 - 4.0),
            4 => {
                instance.song.looping = if chaos.below(2) == 0 {
                    let start = chaos.below(8) as f64 * 4.0;
                    Some((start, start + 4.0 * (1 + chaos.below(3)) as f64))
                } else {
                    None
                };
                instance.play(4096, 512);
            }
            5 => instance.song.tempo = 40.0 + chaos.unit() * 200.0,
            6 => {
                for _ in 0..4 {
                    let (name, min, max) =
                        &automatable[chaos.below(automatable.len() as u64) as usize];
                    let value = min + (max - min) * chaos.unit();
                    instance.set(name, value);
                }
                // Keys pressed and let go on the note input (Follow is
                // among the automated parameters).
                for _ in 0..3 {
                    instance.key(chaos.below(128) as u8, chaos.below(2) == 0);
                }
            }
            7 => {
                let meters = [(4, 4), (3, 4), (7, 8), (5, 4), (6, 8)];
                let bar = instance.song.bar_start;
                instance.song.meter = meters[chaos.below(5) as usize];
                instance.song.locate(bar);
            }
            // Another host's ways (see HostProfile).
            _ => {
                let profiles = HostProfile::ALL;
                let profile = profiles[chaos.below(profiles.len() as u64) as usize];
                instance.song.profile = profile;
                instance.song.tempo_inc = if profile == HostProfile::TempoRampInsideBlock {
                    2e-5 * (chaos.unit() - 0.5)
                } else {
                    0.0
                };
            }
        }
        // Keep a ramp within the musical range.
        if !(20.0..=400.0).contains(&instance.song.tempo) {
            instance.song.tempo = 120.0;
        }
    }
    instance.song.playing = true;
    instance.play(96_000, 512);
    // Humanize and Swing are among the automated parameters: notes may lie
    // up to a third of a 16th off the grid, never further.
    let events = finish_within(instance, "chaos", 1.0 / 3.0);
    let notes = events.iter().filter(|e| e.on).count();
    let moved = events.iter().filter(|e| e.on && !e.on_grid).count();
    println!(
        "chaos: 10000 operations (blocks {}, play/stop {}, locates {}, loops {}, tempo {}, automation {}, meters {}, host profiles {}), {notes} notes ({moved} off the grid by humanize or swing, none by more than a third of a 16th), 0 stuck",
        counts[0] + counts[1],
        counts[2],
        counts[3],
        counts[4],
        counts[5],
        counts[6],
        counts[7],
        counts[8]
    );
}

#[test]
fn an_absurd_host_tempo_plays_nothing_rather_than_a_storm() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = playing(&bundle);
    instance.play(48_000, 512);
    for tempo in [1e7, 1000.0] {
        instance.song.tempo = tempo;
        let from = instance.events.len();
        instance.block(512);
        let starts = instance.events_since(from).iter().filter(|e| e.on).count();
        assert_eq!(starts, 0, "{tempo} BPM started {starts} notes");
        check_balanced(&instance.events).expect("everything sounding ended");
    }
    // Back in the musical range, it plays on.
    instance.song.tempo = 999.0;
    instance.song.locate(0.0);
    let from = instance.events.len();
    instance.play(48_000, 512);
    assert!(
        instance.events_since(from).iter().any(|e| e.on),
        "999 BPM plays"
    );
    finish(instance, "absurd tempo");
}
