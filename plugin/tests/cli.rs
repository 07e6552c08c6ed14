//! `latent-trio render` as a musician or a CI pipeline runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use midly::{MetaMessage, MidiMessage, Smf, TrackEventKind};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn render(out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latent-trio"))
        .args([
            "--models",
            models().to_str().unwrap(),
            "--provider",
            "cpu",
            "render",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// (tick, channel, key) of every note-on per track.
fn note_ons(path: &Path) -> Vec<Vec<(u32, u8, u8)>> {
    let bytes = std::fs::read(path).unwrap();
    let smf = Smf::parse(&bytes).unwrap();
    smf.tracks
        .iter()
        .map(|track| {
            let mut tick = 0;
            track
                .iter()
                .filter_map(|event| {
                    tick += event.delta.as_int();
                    match event.kind {
                        TrackEventKind::Midi {
                            channel,
                            message: MidiMessage::NoteOn { key, vel },
                        } if vel > 0 => Some((tick, channel.as_int(), key.as_int())),
                        _ => None,
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_same_arguments_write_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.mid"), dir.path().join("b.mid"));
    let args = [
        "--bars",
        "4",
        "--seed",
        "11",
        "--knob",
        "bass.latent_3=1.25",
    ];
    assert!(render(&a, &args).status.success());
    assert!(render(&b, &args).status.success());
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn a_render_has_tempo_meter_and_one_track_per_part_on_its_channel() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("song.mid");
    let output = render(&path, &["--bars", "8", "--tempo", "96", "--meter", "7/8"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes = std::fs::read(&path).unwrap();
    let smf = Smf::parse(&bytes).unwrap();
    let meta: Vec<_> = smf.tracks[0].iter().map(|e| e.kind).collect();
    assert!(meta.contains(&TrackEventKind::Meta(MetaMessage::Tempo(625_000.into()))));
    assert!(meta.iter().any(|k| matches!(
        k,
        TrackEventKind::Meta(MetaMessage::TimeSignature(7, 3, _, _))
    )));
    let tracks = note_ons(&path);
    assert_eq!(
        tracks.len(),
        5,
        "a conductor track, drums, bass, melody and the chords they followed"
    );
    for (track, channel) in tracks[1..].iter().zip([9u8, 1, 0, 3]) {
        assert!(!track.is_empty(), "every part plays");
        assert!(
            track.iter().all(|&(_, c, _)| c == channel),
            "channel {}",
            channel + 1
        );
        // On the 16th grid (120 ticks) and inside 8 bars of 7/8 (14 steps each).
        assert!(
            track
                .iter()
                .all(|&(tick, _, _)| tick % 120 == 0 && tick < 8 * 14 * 120)
        );
    }
}

#[test]
fn knobs_and_seeds_change_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("{i}.mid")))
        .collect();
    assert!(render(&paths[0], &["--seed", "5"]).status.success());
    assert!(render(&paths[1], &["--seed", "6"]).status.success());
    assert!(
        render(
            &paths[2],
            &[
                "--seed",
                "5",
                "--knob",
                "drums.density=2",
                "--knob",
                "melody.latent_1=-3"
            ]
        )
        .status
        .success()
    );
    let files: Vec<_> = paths.iter().map(|p| note_ons(p)).collect();
    assert_ne!(files[0], files[1]);
    assert_ne!(files[0][1], files[2][1], "drums follow the density knob");
    assert_ne!(files[0][3], files[2][3], "melody follows its latent knob");
}

#[test]
fn bad_options_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.mid");
    for (args, expected) in [
        (vec!["--knob", "drums.latent_9=1"], "latent_1..latent_8"),
        (
            vec!["--knob", "drums.latent_1=7"],
            "outside the knob's range",
        ),
        (vec!["--parts", "drums,kazoo"], "unknown part"),
        (vec!["--meter", "4/3"], "not supported"),
        (
            vec!["--chords", "Am F Xyz G"],
            "cannot read the chord \"Xyz\"",
        ),
        (
            vec!["--chords", "C F G C F G C F G C F G C F G C F"],
            "found 17",
        ),
        (vec!["--chords", "C F G Am | C"], "bar 1 has 4 chords"),
        (vec!["--key", "A dorian"], "cannot read the key"),
        (
            vec!["--key", "A minor", "--progression", "I V vi IV"],
            "is in major",
        ),
        (vec!["--progression", "I IV V"], "unknown progression"),
    ] {
        let output = render(&out, &args);
        assert!(!output.status.success());
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains(expected), "{args:?}: {message}");
    }
    assert!(!out.exists());
}

/// Per 16th step of the first two bars of `track`: the sorted keys starting there.
fn steps(path: &Path, track: usize) -> Vec<Vec<u8>> {
    let mut steps = vec![Vec::new(); 32];
    for (tick, _, key) in &note_ons(path)[track] {
        if let Some(step) = steps.get_mut((*tick / 120) as usize) {
            step.push(*key);
            step.sort();
        }
    }
    steps
}

#[test]
fn a_clip_rendered_at_knobs_zero_comes_back_as_a_close_copy() {
    let dir = tempfile::tempdir().unwrap();
    // Four clips a part: one clip is a sample of one.
    for (part, seeds) in [("drums", 5..9), ("bass", 7..11), ("melody", 9..13)] {
        let mut same = 0;
        for seed in seeds.clone() {
            let seed = seed.to_string();
            let clip = dir.path().join(format!("{part}-{seed}-clip.mid"));
            let copy = dir.path().join(format!("{part}-{seed}-copy.mid"));
            let made = render(&clip, &["--bars", "2", "--seed", &seed, "--parts", part]);
            assert!(made.status.success());
            let output = render(
                &copy,
                &[
                    "--bars",
                    "2",
                    "--parts",
                    part,
                    "--input",
                    clip.to_str().unwrap(),
                    "--part",
                    part,
                    "--temperature",
                    "0",
                ],
            );
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let (original, copied) = (steps(&clip, 1), steps(&copy, 1));
            same += original.iter().zip(&copied).filter(|(a, b)| a == b).count();
        }
        let accuracy = same as f64 / (32 * seeds.len()) as f64;
        println!(
            "{part}: {same}/{} steps reproduced ({accuracy:.3})",
            32 * seeds.len()
        );
        // Two unrelated melodies share about 0.47 of their steps (mostly
        // rests and held notes), so 0.7 is a copy, if not an exact one.
        assert!(
            accuracy >= 0.7,
            "{part}: only {accuracy:.3} of the steps match"
        );
    }
}

#[test]
fn an_unsuitable_input_clip_is_refused_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.mid");
    std::fs::write(&garbage, b"not midi at all").unwrap();
    let out = dir.path().join("out.mid");
    let output = render(
        &out,
        &["--input", garbage.to_str().unwrap(), "--part", "drums"],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a MIDI file"), "{stderr}");
    assert!(!out.exists(), "nothing is written");
}

#[test]
fn bass_and_melody_play_a_typed_progression_and_the_file_has_its_chords() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("am.mid");
    let output = render(
        &path,
        &["--key", "A minor", "--chords", "Am F C G", "--bars", "5"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tracks = note_ons(&path);
    // Block chords on channel 4, one a bar, voiced from middle C up.
    let chords = &tracks[4];
    let at = |tick: u32| -> Vec<u8> {
        let mut keys: Vec<u8> = chords
            .iter()
            .filter(|&&(t, c, _)| t == tick && c == 3)
            .map(|&(_, _, key)| key)
            .collect();
        keys.sort_unstable();
        keys
    };
    assert_eq!(at(0), [60, 64, 69], "A minor");
    assert!(at(960).is_empty(), "one chord a bar");
    assert_eq!(at(1920), [60, 65, 69], "F");
    assert_eq!(at(3840), [60, 64, 67], "C");
    assert_eq!(at(5760), [62, 67, 71], "G");
    assert_eq!(at(7680), [60, 64, 69], "the progression loops");
    // With the scale lock on (the default) every bass and melody note is in A minor.
    let a_minor = [9u8, 11, 0, 2, 4, 5, 7];
    for track in &tracks[2..4] {
        assert!(!track.is_empty());
        assert!(
            track
                .iter()
                .all(|&(_, _, key)| a_minor.contains(&(key % 12))),
            "{track:?}"
        );
    }
}

#[test]
fn a_melody_follows_the_structure_of_a_clip_and_a_wrong_request_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    // 8 bars of a 4-bar phrase: bars 5-8 repeat bars 1-4.
    let clip = dir.path().join("clip.mid");
    let made = render(
        &clip,
        &[
            "--bars",
            "8",
            "--phrase-bars",
            "4",
            "--parts",
            "melody",
            "--seed",
            "11",
        ],
    );
    assert!(made.status.success());
    let (followed, plain) = (
        dir.path().join("followed.mid"),
        dir.path().join("plain.mid"),
    );
    let common = [
        "--bars",
        "16",
        "--parts",
        "melody",
        "--seed",
        "3",
        "--temperature",
        "0",
    ];
    let output = render(
        &followed,
        &[
            &common[..],
            &["--context-from", clip.to_str().unwrap(), "--part", "melody"],
        ]
        .concat(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("follows the structure of clip.mid"),
        "{stderr}"
    );
    assert!(
        render(&plain, &[&common[..], &["--phrase-bars", "16"]].concat())
            .status
            .success()
    );
    assert_ne!(
        note_ons(&followed)[1],
        note_ons(&plain)[1],
        "the clip's structure is heard"
    );
    assert_eq!(
        note_ons(&followed),
        note_ons(&{
            let again = dir.path().join("again.mid");
            render(
                &again,
                &[&common[..], &["--context-from", clip.to_str().unwrap()]].concat(),
            );
            again
        }),
        "the same arguments write the same notes"
    );
    for (extra, says) in [
        (&["--phrase-bars", "2"][..], "4-, 8- or 16-bar phrases"),
        (&["--part", "drums"][..], "--part names the part"),
    ] {
        let output = render(
            &dir.path().join("refused.mid"),
            &[&["--context-from", clip.to_str().unwrap()][..], extra].concat(),
        );
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{stderr}");
    }
}
