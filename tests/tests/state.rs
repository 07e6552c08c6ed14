//! Saved projects: what was saved plays back identically; broken state is
//! refused and leaves the instance as it was.

use latent_trio_host::{Bundle, Instance, clap_bundle};

/// Note events of 16 bars from the song start, with samples counted from there.
fn sixteen_bars(instance: &mut Instance) -> Vec<(u64, bool, u16, u16)> {
    let (from, wall) = (instance.events.len(), instance.wall);
    instance.song = Default::default();
    instance.play(16 * 96_000, 512);
    instance.song.playing = false;
    instance.block(64);
    instance
        .events_since(from)
        .iter()
        .map(|e| (e.sample - wall, e.on, e.channel, e.key))
        .collect()
}

/// An instance with unusual settings, stopped, with its settings applied.
fn customised(bundle: &Bundle) -> Instance {
    let mut instance = bundle.instantiate_offline(1024).unwrap();
    for (name, value) in [
        ("Seed", 77.0),
        ("Drums Latent 3", 1.7),
        ("Bass Temperature", 0.9),
        ("Melody Register", -1.2),
        // CLAP counts a stepped parameter's values from its minimum: channel 5.
        ("Bass Channel", 4.0),
        ("New Seed", 1.0),
    ] {
        instance.set(name, value);
    }
    instance.song.playing = false;
    instance.block(64);
    instance
}

#[test]
fn a_saved_state_plays_the_same_16_bars_in_a_new_instance() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut original = customised(&bundle);
    let state = original.save_state();
    let expected = sixteen_bars(&mut original);
    drop(original);
    let mut restored = bundle.instantiate_offline(1024).unwrap();
    restored.load_state(&state).expect("the state loads");
    assert_eq!(restored.param_value("Seed").round(), 77.0);
    let played = sixteen_bars(&mut restored);
    assert!(played.len() > 50);
    assert_eq!(played, expected);
    assert!(
        played.iter().any(|e| e.2 == 4),
        "the bass plays on the saved channel 5: {:?}",
        played
            .iter()
            .map(|e| e.2)
            .collect::<std::collections::BTreeSet<_>>()
    );
}

#[test]
fn garbage_and_truncated_state_is_refused_and_the_instance_plays_on() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = customised(&bundle);
    let state = instance.save_state();
    let before = sixteen_bars(&mut instance);
    for broken in [
        b"\x00\x01garbage\xff".to_vec(),
        state[..state.len() / 2].to_vec(),
        Vec::new(),
    ] {
        assert!(
            instance.load_state(&broken).is_err(),
            "{} bytes of broken state were accepted",
            broken.len()
        );
        assert_eq!(
            sixteen_bars(&mut instance),
            before,
            "the instance still plays its own settings"
        );
    }
}

#[test]
fn state_from_a_newer_major_version_is_not_applied() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = customised(&bundle);
    let before = sixteen_bars(&mut instance);
    let mut other = bundle.instantiate_offline(1024).unwrap();
    let text = String::from_utf8(other.save_state()).expect("JSON state");
    let future = text.replacen(
        &format!("\"version\":\"{}\"", env!("CARGO_PKG_VERSION")),
        "\"version\":\"99.0.0\"",
        1,
    );
    assert_ne!(future, text, "the state names its version");
    let _ = instance.load_state(future.as_bytes());
    assert_eq!(
        instance.param_value("Seed").round(),
        77.0,
        "settings from the future are ignored"
    );
    assert_eq!(sixteen_bars(&mut instance), before);
}
