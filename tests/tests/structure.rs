//! A melody that follows a clip's structure, as a host plays it: loaded with
//! the project, it replaces the melody (drums and bass play on as they
//! were), its repeated bars come back note for note, and it plays the same
//! after saving and loading again.

use latent_trio_host::{
    Bundle, Instance, Onsets, clap_bundle, in_bars, set_stored_latents, state_bytes, state_json,
    stored_latents,
};

/// The Phrase parameter's "16 bars" (Progression, 2, 4, 8, 16 bars, Song).
const SIXTEEN_BARS: f64 = 4.0;
/// The melody's default channel (0-based).
const MELODY: u16 = 0;

/// A followed structure as the window stores it: a Transformer VAE latent
/// (16 bar latents of 64) and the bars 5-16 repeating bars 1-4, as after
/// following a 4-bar clip.
fn followed_structure() -> serde_json::Value {
    let latent: Vec<f32> = (0..1024).map(|i| 0.9 * (i as f32 * 0.61).sin()).collect();
    let sources: Vec<u8> = (0..16).map(|bar| bar % 4).collect();
    serde_json::json!({
        "name": "four-bars.mid",
        "summary": "bars 1-4, 12 notes; 12 of 16 bars repeat an earlier one",
        "latent": latent,
        "bar_sources": sources,
    })
}

fn play(instance: &mut Instance, bars: f64) -> Onsets {
    instance.play_bars(bars, 512);
    instance.stop_and_onsets()
}

fn of_channel(onsets: &Onsets, channel: u16) -> Onsets {
    onsets
        .iter()
        .copied()
        .filter(|onset| onset.1 == channel)
        .collect()
}

fn without_channel(onsets: &Onsets, channel: u16) -> Onsets {
    onsets
        .iter()
        .copied()
        .filter(|onset| onset.1 != channel)
        .collect()
}

#[test]
fn a_followed_structure_loads_with_the_project_repeats_its_bars_and_survives_saving() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut original = bundle.instantiate_offline(1024).unwrap();
    original.set("Phrase", SIXTEEN_BARS);
    let own = play(&mut original, 16.0);
    let mut state = state_json(&original.save_state());
    let mut stored = stored_latents(&state);
    stored["structure"] = followed_structure();
    set_stored_latents(&mut state, &stored);

    let mut first = bundle.instantiate_offline(1024).unwrap();
    first
        .load_state(&state_bytes(&state))
        .expect("the state loads");
    let heard = play(&mut first, 16.0);
    let melody = of_channel(&heard, MELODY);
    assert!(melody.len() >= 8, "{} melody notes", melody.len());
    assert_ne!(
        melody,
        of_channel(&own, MELODY),
        "the followed melody plays"
    );
    assert_eq!(
        without_channel(&heard, MELODY),
        without_channel(&own, MELODY),
        "drums and bass play on as they were"
    );
    // The default progression is 4 bars long, so the repeats come back
    // over the same chords: note for note.
    for bars in [4..8, 8..12, 12..16] {
        assert_eq!(
            in_bars(&melody, bars.clone()),
            in_bars(&melody, 0..4),
            "bars {bars:?}"
        );
    }

    let saved = state_json(&first.save_state());
    let mut second = bundle.instantiate_offline(1024).unwrap();
    second
        .load_state(&state_bytes(&saved))
        .expect("the saved state loads");
    second.set("Phrase", SIXTEEN_BARS);
    assert_eq!(
        play(&mut second, 16.0),
        heard,
        "the same notes after saving and loading"
    );
}
