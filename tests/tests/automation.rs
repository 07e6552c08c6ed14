//! Knob moves: the old phrase finishes its bar and the new one starts exactly
//! on the next bar line the Change setting allows. Offline rendering makes
//! the worker's timing irrelevant, so the bar line is exact.

use latent_trio_host::{Bundle, check_balanced, clap_bundle, switched_at};

const BAR: u64 = 96_000; // 4/4 at 120 BPM and 48 kHz

/// Note-ons (sample, channel, key) of an offline run of `bars` bars, with
/// `knobs` set at `at` samples (or from the start).
fn run(
    bundle: &Bundle,
    change: Option<f64>,
    knobs: &[(&str, f64)],
    at: u64,
    bars: u64,
) -> Vec<(u64, u16, u16)> {
    let mut instance = bundle.instantiate_offline(1024).unwrap();
    if let Some(change) = change {
        instance.set("Change", change);
    }
    instance.play(at, 512);
    for (name, value) in knobs {
        instance.set(name, *value);
    }
    instance.play(bars * BAR - at, 512);
    instance.stop_and_note_ons()
}

const KNOBS: [(&str, f64); 3] = [
    ("Drums Latent 1", 2.5),
    ("Bass Latent 1", -2.5),
    ("Melody Density", 1.5),
];

/// Note-ons as (sample, channel, key).
type NoteOns = Vec<(u64, u16, u16)>;

/// Runs with `knobs` moved at `at` and checks that the music changes from
/// `expected_bar` on; returns the note-ons (before, after) of the runs
/// without and with the move.
fn changes_on(
    knobs: &[(&str, f64)],
    change: Option<f64>,
    at: u64,
    expected_bar: u64,
) -> (NoteOns, NoteOns) {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let before = run(&bundle, change, &[], 0, 8);
    let after = run(&bundle, change, knobs, 0, 8);
    let automated = run(&bundle, change, knobs, at, 8);
    let line = expected_bar * BAR;
    let expected = switched_at(&before, &after, line);
    assert_ne!(before, after, "the knobs change the music");
    assert_eq!(
        automated, expected,
        "the change lands on bar {expected_bar}"
    );
    (before, after)
}

#[test]
fn a_knob_moved_mid_bar_takes_over_on_the_next_bar_line() {
    changes_on(&KNOBS, None, BAR + BAR / 2 + 77, 2);
}

#[test]
fn with_change_every_2_bars_the_new_phrase_waits_for_an_even_bar() {
    changes_on(&KNOBS, Some(1.0), 2 * BAR + BAR / 4, 4);
}

#[test]
fn with_change_every_4_bars_the_new_phrase_waits_for_bar_4() {
    changes_on(&KNOBS, Some(2.0), BAR / 3, 4);
}

#[test]
fn a_new_key_and_progression_take_over_on_the_next_bar_line_and_leave_the_drums_alone() {
    // A minor, i VI III VII.
    let (before, after) = changes_on(
        &[("Key", 9.0), ("Progression", 5.0)],
        None,
        BAR + BAR / 3,
        2,
    );
    let drums = |notes: &[(u64, u16, u16)]| -> NoteOns {
        notes.iter().filter(|n| n.1 == 9).copied().collect()
    };
    assert_eq!(drums(&before), drums(&after), "drums follow no chords");
    let a_minor = [9u16, 11, 0, 2, 4, 5, 7];
    let melodic: Vec<_> = after.iter().filter(|n| n.1 != 9).collect();
    assert!(!melodic.is_empty());
    assert!(
        melodic.iter().all(|n| a_minor.contains(&(n.2 % 12))),
        "bass and melody play in A minor: {melodic:?}"
    );
}

#[test]
fn a_one_part_instance_plays_that_parts_notes_on_channel_1() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let all = run(&bundle, None, &[], 0, 4);
    let bass: Vec<_> = all
        .iter()
        .filter(|e| e.1 == 1)
        .map(|&(sample, _, key)| (sample, 0, key))
        .collect();
    assert!(bass.len() > 4, "the bass plays");
    let mut instance = bundle.instantiate_offline(1024).unwrap();
    instance.set("Output", 2.0); // Bass only
    instance.set("One Part on Channel 1", 1.0);
    instance.play(4 * BAR, 512);
    instance.song.playing = false;
    instance.block(64);
    check_balanced(&instance.events).unwrap();
    let played: Vec<_> = instance
        .events
        .iter()
        .filter(|e| e.on)
        .map(|e| (e.sample, e.channel, e.key))
        .collect();
    assert_eq!(played, bass, "the bass alone, on channel 1, same song");
}
