//! Phrases of 16 bars from the hierarchical models, as a host plays them:
//! the notes the CLI renders, a phrase that repeats only after 16 bars, and
//! a knob move that changes the bars still to come while the bars already
//! heard come back as they were.

use latent_trio_host::{Bundle, Instance, clap_bundle, cli_onsets_with, in_bars};

const BAR: u64 = 96_000; // 4/4 at 120 BPM and 48 kHz
/// The Phrase parameter's "16 bars" (Progression, 2, 4, 8, 16 bars).
const SIXTEEN_BARS: f64 = 4.0;

fn sixteen_bar_instance(bundle: &Bundle) -> Instance {
    let mut instance = bundle.instantiate_offline(1024).unwrap();
    instance.set("Phrase", SIXTEEN_BARS);
    instance
}

#[test]
fn a_16_bar_phrase_plays_what_the_cli_renders_and_repeats_only_after_16_bars() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = sixteen_bar_instance(&bundle);
    instance.play_bars(32.0, 512);
    let heard = instance.stop_and_onsets();
    let rendered = cli_onsets_with(1, 32, (4, 4), &["--phrase-bars", "16"]);
    assert!(rendered.len() > 200, "{} notes", rendered.len());
    assert_eq!(heard, rendered, "the plugin plays what the CLI renders");
    assert_eq!(
        in_bars(&heard, 0..16),
        in_bars(&heard, 16..32),
        "it repeats after 16 bars"
    );
    for (a, b) in [(0..2, 2..4), (0..4, 4..8), (0..8, 8..16)] {
        assert_ne!(
            in_bars(&heard, a.clone()),
            in_bars(&heard, b.clone()),
            "bars {a:?} and {b:?} differ"
        );
    }
}

#[test]
fn with_change_every_4_bars_a_knob_moved_in_bar_6_changes_the_music_from_bar_9_and_the_heard_bars_come_back()
 {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let run = |moved_at: Option<u64>| {
        let mut instance = sixteen_bar_instance(&bundle);
        instance.set("Change", 2.0); // every 4 bars
        if let Some(at) = moved_at {
            instance.play(at, 512);
            instance.set("Melody Latent 1", 2.5);
            instance.set("Bass Latent 1", -2.5);
            instance.play(24 * BAR - at, 512);
        } else {
            instance.play_bars(24.0, 512);
        }
        instance.stop_and_onsets()
    };
    let before = run(None);
    // Bar 6 (1-based) starts 5 bars in.
    let automated = run(Some(5 * BAR + BAR / 3));
    assert_eq!(
        in_bars(&automated, 0..8),
        in_bars(&before, 0..8),
        "bars 1-8 as before"
    );
    assert_ne!(
        in_bars(&automated, 8..16),
        in_bars(&before, 8..16),
        "bars 9-16 changed"
    );
    assert_eq!(
        in_bars(&automated, 16..24),
        in_bars(&before, 16..24),
        "the next time round, the bars heard before the move come back"
    );
}
