//! Scenes: two stored latents and a Morph knob between them. With "Morph
//! Over" set, a knob move travels from A to B one step per bar, each step
//! taking over on a bar line; the scenes are part of the saved project.

use latent_trio_host::{
    Bundle, Instance, check_balanced, clap_bundle, set_stored_latents, state_bytes, state_json,
};

const BAR: u64 = 96_000; // 4/4 at 120 BPM and 48 kHz
const LATENT: usize = 128;

/// A reproducible latent that decodes to music: standard normal values.
fn latent(seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..LATENT)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

/// An offline instance whose project holds scene A and B, playing scenes.
fn with_scenes(bundle: &Bundle, morph_bars: f64, morph: f64) -> Instance {
    let mut instance = bundle.instantiate_offline(1024).unwrap();
    let mut state = state_json(&instance.save_state());
    let scene = |seed: u64| serde_json::json!({ "latents": [latent(seed), latent(seed + 1), latent(seed + 2)] });
    let stored =
        serde_json::json!({ "clips": [null, null, null], "scenes": [scene(10), scene(20)] });
    set_stored_latents(&mut state, &stored);
    instance
        .load_state(&state_bytes(&state))
        .expect("a state with scenes loads");
    instance.set("Play Scenes", 1.0);
    instance.set("Morph Over", morph_bars);
    instance.set("Morph A-B", morph);
    instance.song.playing = false;
    instance.block(64);
    instance
}

/// Note-ons per bar: (sample within the bar, channel, key).
fn bars(
    instance: &mut Instance,
    count: u64,
    moves: &[(u64, &str, f64)],
) -> Vec<Vec<(u64, u16, u16)>> {
    let (from, wall) = (instance.events.len(), instance.wall);
    instance.song = Default::default();
    let mut played = 0;
    for &(at, name, value) in moves {
        instance.play(at - played, 512);
        instance.set(name, value);
        played = at;
    }
    instance.play(count * BAR - played, 512);
    instance.song.playing = false;
    instance.block(64);
    check_balanced(&instance.events).unwrap();
    let mut per_bar = vec![Vec::new(); count as usize];
    for event in instance.events_since(from).iter().filter(|e| e.on) {
        let sample = event.sample - wall;
        if let Some(bar) = per_bar.get_mut((sample / BAR) as usize) {
            bar.push((sample % BAR, event.channel, event.key));
        }
    }
    per_bar
}

#[test]
fn morph_over_4_bars_moves_one_step_per_bar_from_a_to_b() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let a = bars(&mut with_scenes(&bundle, 0.0, 0.0), 10, &[]);
    let b = bars(&mut with_scenes(&bundle, 0.0, 1.0), 10, &[]);
    assert_ne!(a, b, "scene A and B sound different");
    // The knob goes to B in the middle of bar 2 (0-based).
    let glide = bars(
        &mut with_scenes(&bundle, 4.0, 0.0),
        10,
        &[(2 * BAR + BAR / 2, "Morph A-B", 1.0)],
    );
    // Steps 1/4, 2/4, 3/4, 4/4 are asked for at the bar lines of bars 3-6
    // and each is heard from the bar line after.
    assert_eq!(glide[..4], a[..4], "A plays until the first step arrives");
    assert_eq!(glide[7..], b[7..], "B plays once the glide is over");
    let between = (4..7).filter(|&bar| glide[bar] != a[bar] && glide[bar] != b[bar]);
    assert!(
        between.count() >= 2,
        "bars 4-6 play the way between A and B"
    );
}

#[test]
fn without_a_glide_the_morph_lands_on_the_next_bar_line() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let a = bars(&mut with_scenes(&bundle, 0.0, 0.0), 6, &[]);
    let b = bars(&mut with_scenes(&bundle, 0.0, 1.0), 6, &[]);
    let jump = bars(
        &mut with_scenes(&bundle, 0.0, 0.0),
        6,
        &[(BAR + BAR / 3, "Morph A-B", 1.0)],
    );
    assert_eq!(jump[..2], a[..2]);
    assert_eq!(jump[2..], b[2..]);
}

#[test]
fn scenes_are_saved_with_the_project() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut original = with_scenes(&bundle, 0.0, 0.6);
    let state = original.save_state();
    let expected = bars(&mut original, 4, &[]);
    drop(original);
    let mut restored = bundle.instantiate_offline(1024).unwrap();
    restored.load_state(&state).expect("the state loads");
    assert_eq!(bars(&mut restored, 4, &[]), expected);
    let plain = bars(&mut bundle.instantiate_offline(1024).unwrap(), 4, &[]);
    assert_ne!(expected, plain, "the scenes, not the seed, were playing");
}
