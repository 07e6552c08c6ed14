//! Humanize and Swing as a host hears them: notes off the grid by at most a
//! third of a 16th, with the humanize model's velocities; every note-off
//! after its note-on; and an offline bounce that equals the CLI render with
//! the same knobs, note for note, velocity for velocity.

use latent_trio_host::{Bundle, check_balanced, clap_bundle, cli_note_ons};

/// 4/4 at 120 BPM and 48 kHz.
const SIXTEENTH: u64 = 6_000;
/// Samples per CLI tick (480 a quarter).
const SAMPLES_PER_TICK: u64 = 50;

/// (sample from the song start, channel, key, velocity) of every note-on
/// of an offline bounce of `bars` bars with `settings` applied.
fn bounce(bundle: &Bundle, settings: &[(&str, f64)], bars: f64) -> Vec<(u64, u16, u16, u8)> {
    let mut instance = bundle.instantiate_offline(1024).unwrap();
    for &(name, value) in settings {
        instance.set(name, value);
    }
    instance.song.playing = false;
    instance.block(64);
    instance.song.playing = true;
    let from = instance.events.len();
    instance.play_bars(bars, 512);
    instance.song.playing = false;
    instance.block(64);
    check_balanced(&instance.events).expect("every note-on has its note-off");
    let mut notes: Vec<(u64, u16, u16, u8)> = instance
        .events_since(from)
        .iter()
        .filter(|e| e.on)
        .map(|e| {
            (
                // 24,000 samples a quarter.
                (e.song_quarters * 24_000.0).round() as u64,
                e.channel,
                e.key,
                (e.velocity * 127.0).round() as u8,
            )
        })
        .collect();
    notes.sort_unstable();
    notes
}

const HUMANIZED: [(&str, f64); 4] = [
    ("Drums Humanize", 1.0),
    ("Bass Humanize", 1.0),
    ("Melody Humanize", 1.0),
    ("Swing", 0.3),
];

#[test]
fn humanized_notes_stay_within_a_third_of_a_16th_and_the_bounce_equals_the_cli() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let notes = bounce(&bundle, &HUMANIZED, 8.0);
    let from_grid = |sample: u64| {
        let into = sample % SIXTEENTH;
        into.min(SIXTEENTH - into)
    };
    assert!(
        notes.iter().all(|n| from_grid(n.0) <= SIXTEENTH / 3),
        "a note moved more than a third of a 16th"
    );
    let moved = notes.iter().filter(|n| from_grid(n.0) > 0).count();
    assert!(
        moved * 2 > notes.len(),
        "most notes leave the grid: {moved} of {}",
        notes.len()
    );
    let velocities: std::collections::BTreeSet<u8> = notes.iter().map(|n| n.3).collect();
    assert!(
        velocities.len() > 8,
        "velocities vary, not only the grid's 110, 96, 82 and 100: {velocities:?}"
    );

    let rendered = cli_note_ons(
        1,
        8,
        (4, 4),
        &[
            "--knob",
            "drums.humanize=1",
            "--knob",
            "bass.humanize=1",
            "--knob",
            "melody.humanize=1",
            "--swing",
            "0.3",
        ],
    );
    assert_eq!(notes.len(), rendered.len(), "as many notes as the CLI's");
    for (heard, written) in notes.iter().zip(&rendered) {
        // The file's ticks are 50 samples wide here.
        let written_sample = u64::from(written.0) * SAMPLES_PER_TICK;
        assert!(
            heard.0.abs_diff(written_sample) < SAMPLES_PER_TICK,
            "{heard:?} against {written:?}"
        );
        assert_eq!(
            (heard.1, heard.2, heard.3),
            (written.1, written.2, written.3)
        );
    }
}

#[test]
fn humanize_at_zero_plays_every_note_on_the_grid_at_the_fixed_velocities() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let grid = bounce(&bundle, &[], 4.0);
    assert!(grid.iter().all(|n| n.0 % SIXTEENTH == 0));
    assert!(
        grid.iter().all(|n| [110, 96, 82, 100].contains(&n.3)),
        "the fixed velocities"
    );
    let rendered = cli_note_ons(1, 4, (4, 4), &[]);
    let heard: Vec<(u64, u16, u16, u8)> = grid.clone();
    let written: Vec<(u64, u16, u16, u8)> = rendered
        .iter()
        .map(|n| (u64::from(n.0) * SAMPLES_PER_TICK, n.1, n.2, n.3))
        .collect();
    assert_eq!(heard, written, "today's notes, sample for sample");
}
