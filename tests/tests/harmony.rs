//! What bass and melody follow besides the preset progressions: chords
//! played into the note input (a keyboard, a host chord track), from the next
//! bar line on, with Follow set to "Played chords" (nothing from the input is
//! ever played back); and a progression typed in the window, saved with the
//! project, with Follow set to "Typed chords".

use latent_trio_host::{
    Bundle, Instance, check_balanced, clap_bundle, cli_onsets_with, set_stored_latents,
    state_bytes, state_json, stored_latents, switched_at,
};

const BAR: u64 = 96_000; // 4/4 at 120 BPM and 48 kHz
/// A minor, as a keyboard player holds it: A2 C4 E4.
const A_MINOR: [u8; 3] = [45, 60, 64];

/// Note-ons (sample, channel, key).
type NoteOns = Vec<(u64, u16, u16)>;

fn following(bundle: &Bundle) -> Instance {
    let mut instance = bundle.instantiate_offline(1024).unwrap();
    // Follow: Progression, Typed chords, Played chords.
    instance.set("Follow", 2.0);
    instance
}

fn press(instance: &mut Instance, keys: &[u8], down: bool) {
    for &key in keys {
        instance.key(key, down);
    }
}

/// Plays `bars` bars, pressing `keys` at sample `at` (never, for `None`),
/// letting them go at `release` if given; returns the note-ons.
fn run(bundle: &Bundle, keys: &[u8], at: Option<u64>, release: Option<u64>, bars: u64) -> NoteOns {
    let mut instance = following(bundle);
    let mut played = 0;
    while played < bars * BAR {
        if Some(played) == at {
            press(&mut instance, keys, true);
        }
        if Some(played) == release {
            press(&mut instance, keys, false);
        }
        instance.block(512);
        played += 512;
    }
    instance.stop_and_note_ons()
}

fn bass(notes: &[(u64, u16, u16)], from: u64) -> Vec<u16> {
    notes
        .iter()
        .filter(|n| n.1 == 1 && n.0 >= from)
        .map(|n| n.2 % 12)
        .collect()
}

#[test]
fn a_chord_played_mid_bar_is_followed_from_the_next_bar_line() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let untouched = run(&bundle, &A_MINOR, None, None, 6);
    let from_start = run(&bundle, &A_MINOR, Some(0), None, 6);
    // Pressed in bar 2 (512-sample blocks: the press lands on a block start).
    let at = 2 * BAR + 512 * 40;
    let played = run(&bundle, &A_MINOR, Some(at), None, 6);
    let line = 3 * BAR;
    let expected = switched_at(&untouched, &from_start, line);
    assert_ne!(untouched, from_start, "the played chord changes the music");
    // Up to bar 3 the notes are those of the run without any input: the
    // pressed keys were not echoed.
    assert_eq!(played, expected, "the chord takes over on bar 3");
    let tones = bass(&played, line);
    let on_a_minor = tones.iter().filter(|&&pc| [9, 0, 4].contains(&pc)).count();
    assert!(
        on_a_minor * 10 >= tones.len() * 8,
        "the bass plays A minor's notes: {tones:?}"
    );
}

#[test]
fn a_released_chord_stays_until_the_next_one_and_a_single_key_is_a_root() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let held = run(&bundle, &A_MINOR, Some(0), None, 4);
    let released = run(&bundle, &A_MINOR, Some(0), Some(BAR / 2), 4);
    assert_eq!(held, released, "letting go keeps the chord");
    // D alone in C major is D minor (ii), not D major.
    let d = run(&bundle, &[50], Some(0), None, 4);
    let d_minor = run(&bundle, &[50, 53, 57], Some(0), None, 4);
    assert_eq!(d, d_minor);
}

#[test]
fn a_chord_held_across_a_loop_and_a_stop_leaves_no_note_hanging() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = following(&bundle);
    press(&mut instance, &A_MINOR, true);
    instance.song.looping = Some((0.0, 6.0));
    for _ in 0..(3 * BAR / 512) {
        instance.block(512);
    }
    assert!(instance.events.iter().any(|e| e.on), "it plays");
    instance.song.playing = false;
    instance.block(512);
    let stopped = instance.events.len();
    for _ in 0..20 {
        instance.block(512);
    }
    press(&mut instance, &A_MINOR, false);
    instance.block(512);
    check_balanced(&instance.events).expect("every note ends");
    assert!(
        instance.events_since(stopped).is_empty(),
        "nothing plays while stopped, held keys or not"
    );
}

#[test]
fn a_progression_typed_in_the_window_plays_what_the_cli_renders_with_chords() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = bundle.instantiate_offline(1024).unwrap();
    // What the window's "Use" stores, as a project saves it.
    let mut state = state_json(&instance.save_state());
    let mut stored = stored_latents(&state);
    stored["typed_progression"] = serde_json::json!({"chords": "Dm Bb F C", "key": null});
    set_stored_latents(&mut state, &stored);
    instance
        .load_state(&state_bytes(&state))
        .expect("the state loads");
    instance.set("Follow", 1.0);
    instance.song.playing = false;
    instance.block(64);
    instance.song.playing = true;
    let from = instance.events.len();
    instance.play_bars(4.0, 512);
    instance.song.playing = false;
    instance.block(64);
    let heard: latent_trio_host::Onsets = instance
        .events_since(from)
        .iter()
        .filter(|e| e.on)
        .map(|e| (e.step.expect("on the grid"), e.channel, e.key))
        .collect();
    let rendered = cli_onsets_with(1, 4, (4, 4), &["--chords", "Dm Bb F C"]);
    assert!(rendered.len() > 20);
    assert_eq!(heard, rendered);
    let preset = latent_trio_host::cli_onsets(1, 4, (4, 4));
    assert_ne!(
        heard, preset,
        "the typed chords, not the preset, were followed"
    );
}

#[test]
fn a_twelve_bar_blues_plays_twelve_bars_before_it_repeats_as_the_cli_renders_it() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = bundle.instantiate_offline(1024).unwrap();
    // The tenth preset, automatable like the others.
    instance.set("Progression", 9.0);
    instance.play_bars(24.0, 512);
    let heard: latent_trio_host::Onsets = instance
        .stop_and_note_ons()
        .iter()
        .map(|&(sample, channel, key)| ((sample / (BAR / 16)) as i64, channel, key))
        .collect();
    let rendered = cli_onsets_with(1, 24, (4, 4), &["--progression", "12-bar blues"]);
    assert_eq!(heard, rendered, "the plugin plays what the CLI renders");
    let bars = |range: std::ops::Range<i64>, channel: u16| -> Vec<(i64, u16)> {
        heard
            .iter()
            .filter(|n| n.1 == channel && range.contains(&(n.0 / 16)))
            .map(|n| (n.0 - range.start * 16, n.2))
            .collect()
    };
    assert_eq!(bars(0..12, 1), bars(12..24, 1), "the bass repeats after 12");
    assert_ne!(
        bars(0..2, 1),
        bars(4..6, 1),
        "over IV7 the bass plays other notes than over I7"
    );
    assert_eq!(bars(0..2, 9), bars(4..6, 9), "the drums keep their 2 bars");
}
