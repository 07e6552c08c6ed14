//! Song mode as a host plays it: the CLI's 64-bar song note for note and
//! round the loop, and a re-rolled song with locked slots saved with the
//! project.

use latent_trio_host::{
    Bundle, Instance, Onsets, clap_bundle, cli_onsets_with, in_bars, set_stored_latents,
    state_bytes, state_json, stored_latents,
};

/// The Phrase parameter's "Song (64 bars)" (Progression, 2, 4, 8, 16 bars, Song).
const SONG: f64 = 5.0;

fn song_instance(bundle: &Bundle) -> Instance {
    let mut instance = bundle.instantiate_offline(1024).unwrap();
    instance.set("Phrase", SONG);
    instance
}

/// Note-ons of `bars` bars from the song start, by 16th step.
fn play(instance: &mut Instance, bars: f64) -> Onsets {
    instance.song = Default::default();
    instance.play_bars(bars, 512);
    instance.stop_and_onsets()
}

#[test]
fn song_mode_plays_the_cli_song_note_for_note_for_64_bars_and_round_the_loop() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let heard = play(&mut song_instance(&bundle), 80.0);
    let rendered = cli_onsets_with(1, 80, (4, 4), &["--song"]);
    assert!(rendered.len() > 500, "{} notes", rendered.len());
    assert_eq!(heard, rendered, "the plugin plays the song the CLI renders");
    assert_eq!(
        in_bars(&heard, 0..16),
        in_bars(&heard, 64..80),
        "after 64 bars the song starts again"
    );
    assert_ne!(
        in_bars(&heard, 0..16),
        in_bars(&heard, 16..32),
        "a song, not a loop"
    );
}

/// A re-rolled song as the window stores it: take 1 of seed 1, the latents
/// of every part in every slot.
fn rerolled_song() -> serde_json::Value {
    let slots = |phase: f32| -> Vec<Vec<f32>> {
        (0..32)
            .map(|slot| {
                (0..128)
                    .map(|dim| 0.8 * ((slot * 7 + dim) as f32 * 0.37 + phase).sin())
                    .collect()
            })
            .collect()
    };
    serde_json::json!({
        "seed": 1,
        "take": 1,
        "latents": [slots(2.6), slots(0.0), slots(1.3)],
    })
}

#[test]
fn a_re_rolled_song_with_locked_slots_is_saved_with_the_project_and_plays_the_same_after_loading() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut original = song_instance(&bundle);
    let own = play(&mut original, 64.0);
    let mut state = state_json(&original.save_state());
    let mut stored = stored_latents(&state);
    stored["song"] = rerolled_song();
    stored["locked_slots"] = (0..32).map(|slot| slot < 8).collect::<Vec<bool>>().into();
    set_stored_latents(&mut state, &stored);

    let mut first = bundle.instantiate_offline(1024).unwrap();
    first
        .load_state(&state_bytes(&state))
        .expect("the state loads");
    let rerolled = play(&mut first, 64.0);
    assert_ne!(rerolled, own, "the stored song plays, not the seed's own");

    let saved = state_json(&first.save_state());
    let kept = stored_latents(&saved);
    assert_eq!(kept["song"]["take"], 1);
    assert_eq!(kept["locked_slots"], stored["locked_slots"]);
    let mut second = bundle.instantiate_offline(1024).unwrap();
    second
        .load_state(&state_bytes(&saved))
        .expect("the saved state loads");
    assert_eq!(
        play(&mut second, 64.0),
        rerolled,
        "the same notes after saving and loading"
    );
}
