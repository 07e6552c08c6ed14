//! The engine with the real ONNX Runtime and the committed models.
//! Needs `cargo xtask fetch-onnxruntime` (the test command runs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use latent_trio::engine::latent::MONOTONIC_NEEDED;
use latent_trio::engine::manifest::{FORMAT_VERSION, TRANSFORMER_FORMAT_VERSION};
use latent_trio::engine::model::PartModel;
use latent_trio::engine::runtime::{self, Provider, ProviderChoice};
use latent_trio::engine::{Engine, ModelError, PartInputs};
use latent_trio::harmony::{Chord, HarmonySettings, Key, TypedProgression};
use latent_trio::knobs::{
    ATTRIBUTE_KNOBS, AttributeKnob, KnobSnapshot, PRINCIPAL_KNOBS, PartKnobs, PhraseLength,
};
use latent_trio::midi_clip::read_clip;
use latent_trio::params::MAX_TEMPERATURE;
use latent_trio::pattern::{Part, Phrase};
use latent_trio::stored::{ClipLatent, Scene, StoredLatents};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn engine() -> Engine {
    let engine = Engine::load(&models(), ProviderChoice::Cpu)
        .expect("ONNX Runtime loads (run `cargo xtask fetch-onnxruntime`)");
    for part in Part::ALL {
        if let Err(error) = &engine.parts[part.index()] {
            panic!("the committed {} model must load: {error}", part.name());
        }
    }
    engine
}

fn decode(engine: &mut Engine, knobs: &KnobSnapshot) -> Box<Phrase> {
    let mut phrase = Box::<Phrase>::default();
    engine
        .decode(knobs, &StoredLatents::default(), &mut phrase, None)
        .result()
        .expect("decodes");
    phrase
}

fn decode_with(engine: &mut Engine, knobs: &KnobSnapshot, stored: &StoredLatents) -> Box<Phrase> {
    let mut phrase = Box::<Phrase>::default();
    engine
        .decode(knobs, stored, &mut phrase, None)
        .result()
        .expect("decodes");
    phrase
}

/// Knobs at rest, most likely notes: the phrase depends on the latent only.
fn greedy(seed: u32) -> KnobSnapshot {
    let mut knobs = KnobSnapshot {
        seed,
        ..KnobSnapshot::default()
    };
    for part in &mut knobs.parts {
        part.temperature = 0.0;
    }
    knobs
}

fn notes(phrase: &Phrase) -> Vec<Vec<(u16, u8, u8)>> {
    Part::ALL
        .iter()
        .map(|&part| {
            phrase
                .part(part)
                .notes()
                .iter()
                .map(|n| (n.step, n.length_steps, n.pitch))
                .collect()
        })
        .collect()
}

#[test]
fn the_same_seed_and_knobs_always_give_the_same_notes() {
    let mut engine = engine();
    let knobs = KnobSnapshot {
        seed: 42,
        ..KnobSnapshot::default()
    };
    let first = notes(&decode(&mut engine, &knobs));
    assert!(
        first.iter().all(|part| !part.is_empty()),
        "every part plays something: {first:?}"
    );
    // A second engine (as after reloading a project) agrees too.
    let mut reloaded = self::engine();
    assert_eq!(notes(&decode(&mut engine, &knobs)), first);
    assert_eq!(notes(&decode(&mut reloaded, &knobs)), first);
}

#[test]
fn a_different_seed_gives_different_notes() {
    let mut engine = engine();
    let with_seed = |seed| KnobSnapshot {
        seed,
        ..KnobSnapshot::default()
    };
    let one = notes(&decode(&mut engine, &with_seed(1)));
    let two = notes(&decode(&mut engine, &with_seed(2)));
    for (part, (a, b)) in Part::ALL.iter().zip(one.iter().zip(&two)) {
        assert_ne!(a, b, "{} should change with the seed", part.name());
    }
}

#[test]
fn every_knob_moves_the_latent() {
    let engine = engine();
    for part in Part::ALL {
        let Ok(model) = &engine.parts[part.index()] else {
            unreachable!()
        };
        let base = model.latent(5, &PartKnobs::default(), None);
        let moved = |knobs: PartKnobs| {
            let z = model.latent(5, &knobs, None);
            z.iter()
                .zip(&base)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f32>()
                .sqrt()
        };
        for index in 0..PRINCIPAL_KNOBS {
            let mut knobs = PartKnobs::default();
            knobs.principal[index] = 1.0;
            let distance = moved(knobs);
            let std = model.axes.principal[index].std;
            assert!(
                (distance - std).abs() < 1e-3 * std.max(1.0),
                "{} latent {}: moved {distance}, std {std}",
                part.name(),
                index + 1
            );
        }
        for (index, knob) in AttributeKnob::ALL.iter().enumerate().take(ATTRIBUTE_KNOBS) {
            let mut knobs = PartKnobs::default();
            knobs.attributes[index] = 1.0;
            let distance = moved(knobs);
            // A knob moves the latent unless the part has none, or the
            // model's direction for it is unsteady and it is left out.
            let steady = model.axes.attributes.iter().any(|axis| {
                axis.name == knob.axis_name() && axis.monotonic_share >= MONOTONIC_NEEDED
            });
            if knob.applies_to(part) && steady {
                assert!(
                    distance > 0.01,
                    "{} {} does not move the latent",
                    part.name(),
                    knob.axis_name()
                );
            } else {
                assert_eq!(distance, 0.0, "{} {}", part.name(), knob.axis_name());
            }
        }
    }
}

#[test]
fn knobs_change_the_notes() {
    let mut engine = engine();
    let base = KnobSnapshot {
        seed: 3,
        ..KnobSnapshot::default()
    };
    let mut pushed = base;
    for part in &mut pushed.parts {
        part.principal[0] = 3.0;
        part.attributes[0] = 2.0;
    }
    let before = notes(&decode(&mut engine, &base));
    let after = notes(&decode(&mut engine, &pushed));
    for (part, (a, b)) in Part::ALL.iter().zip(before.iter().zip(&after)) {
        assert_ne!(a, b, "{} ignores its knobs", part.name());
    }
}

/// A copy of `part`'s committed 2-bar model that a test may break.
fn model_copy(part: Part) -> tempfile::TempDir {
    folder_copy(&format!("{}_2bar", part.name()))
}

/// A copy of the committed model folder `name`.
fn folder_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_folder(&models().join(name), dir.path());
    dir
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn load(folder: &Path, part: Part, choice: ProviderChoice) -> Result<PartModel, ModelError> {
    PartModel::load(runtime::runtime().unwrap(), folder, part, choice)
}

#[test]
fn a_corrupt_onnx_file_is_reported_by_name() {
    let dir = model_copy(Part::Bass);
    std::fs::write(dir.path().join("decoder_step.onnx"), b"not a model at all").unwrap();
    let error = load(dir.path(), Part::Bass, ProviderChoice::Cpu)
        .err()
        .expect("refused");
    assert!(
        matches!(error, ModelError::GraphUnloadable { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("decoder_step.onnx"), "{error}");
}

#[test]
fn a_manifest_with_wrong_shapes_is_refused_with_the_difference() {
    let error = refusal_of_edited_manifest(Part::Melody, |manifest| {
        manifest["latent_size"] = serde_json::json!(64);
    });
    assert!(
        matches!(error, ModelError::ManifestContent { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("float32[batch, 64]"), "{error}");
}

#[test]
fn a_graph_that_disagrees_with_its_manifest_is_refused() {
    // The drums' decoder swapped in for the bass's: right names, wrong vocabulary.
    let dir = model_copy(Part::Bass);
    std::fs::copy(
        models().join("drums_2bar/decoder_step.onnx"),
        dir.path().join("decoder_step.onnx"),
    )
    .unwrap();
    let error = load(dir.path(), Part::Bass, ProviderChoice::Cpu)
        .err()
        .expect("refused");
    assert!(
        matches!(error, ModelError::GraphSignature { .. }),
        "{error}"
    );
}

#[test]
fn a_future_manifest_or_a_model_for_another_part_is_refused() {
    let dir = model_copy(Part::Drums);
    let error = load(dir.path(), Part::Bass, ProviderChoice::Cpu)
        .err()
        .expect("refused");
    assert!(error.to_string().contains("\"drums\" model"), "{error}");
    let newer = TRANSFORMER_FORMAT_VERSION + 1;
    let error = refusal_of_format_version(newer).to_string();
    assert!(
        error.contains(&format!("format version {newer}")),
        "{error}"
    );
    assert!(error.contains("a newer Latent Trio"), "{error}");
}

#[test]
fn a_model_of_the_previous_format_is_refused_with_how_to_export_it_again() {
    let older = FORMAT_VERSION - 1;
    let error = refusal_of_format_version(older).to_string();
    assert!(
        error.contains(&format!("format version {older} is older")),
        "{error}"
    );
    assert!(error.contains("export the model again"), "{error}");
}

/// Why the drums model does not load when its manifest says `version`.
fn refusal_of_format_version(version: u32) -> ModelError {
    refusal_of_edited_manifest(Part::Drums, |manifest| {
        assert_eq!(manifest["format_version"], FORMAT_VERSION);
        manifest["format_version"] = version.into();
    })
}

/// Why a copy of `part`'s 2-bar model does not load once `edit` changed its manifest.
fn refusal_of_edited_manifest(part: Part, edit: impl FnOnce(&mut serde_json::Value)) -> ModelError {
    refusal_of_edited_folder(&format!("{}_2bar", part.name()), part, edit)
}

/// Why a copy of the model folder `name` does not load as `part`'s once
/// `edit` changed its manifest.
fn refusal_of_edited_folder(
    name: &str,
    part: Part,
    edit: impl FnOnce(&mut serde_json::Value),
) -> ModelError {
    let dir = folder_copy(name);
    let path = dir.path().join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(&path, manifest.to_string()).unwrap();
    load(dir.path(), part, ProviderChoice::Cpu)
        .err()
        .expect("refused")
}

#[test]
fn a_chord_conditioned_graph_whose_manifest_omits_the_chord_input_is_refused() {
    let error = refusal_of_edited_manifest(Part::Bass, |manifest| {
        assert!(manifest["chords"].is_object(), "the bass follows chords");
        manifest["chords"] = serde_json::Value::Null;
        for graph in ["encoder", "decoder_step", "latent_gradient"] {
            let inputs = manifest["graphs"][graph]["inputs"].as_array_mut().unwrap();
            inputs.retain(|input| !input["name"].as_str().unwrap().starts_with("chord"));
        }
    });
    assert!(
        matches!(error, ModelError::GraphSignature { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("chord"), "{error}");
}

/// Share of `part`'s note-ons over 40 seeds' phrases (default knobs at
/// `temperature`, with `harmony` and `stored`) whose pitch `fits` the chord
/// at its step.
fn share_of_note_ons(
    engine: &mut Engine,
    part: Part,
    (harmony, stored): (HarmonySettings, &StoredLatents),
    temperature: f32,
    fits: impl Fn(Chord, u8) -> bool,
) -> f64 {
    let (mut fitting, mut total) = (0, 0);
    for seed in 0..40 {
        let mut knobs = KnobSnapshot {
            seed,
            harmony,
            ..KnobSnapshot::default()
        };
        for part in &mut knobs.parts {
            part.temperature = temperature;
        }
        let chords = latent_trio::engine::harmony(&knobs, stored).0;
        let phrase = decode_with(engine, &knobs, stored);
        for note in phrase.part(part).notes() {
            total += 1;
            fitting += usize::from(fits(chords.chord_at(usize::from(note.step)), note.pitch));
        }
    }
    assert!(total > 100, "{total} {} notes", part.name());
    fitting as f64 / total as f64
}

fn unlocked(key_root: u8, preset: usize) -> HarmonySettings {
    HarmonySettings {
        key_root,
        preset,
        scale_lock: false,
        played: None,
        typed: false,
    }
}

#[test]
fn bass_and_melody_follow_the_progression_they_are_given() {
    let mut engine = engine();
    let is_chord_tone = |chord: Chord, pitch: u8| chord.contains(pitch);
    let plain = StoredLatents::default();
    let typed = StoredLatents {
        typed_progression: Some(TypedProgression {
            chords: "Dm Bb F C".into(),
            key: None,
        }),
        ..StoredLatents::default()
    };
    // I V vi IV in C, then in G, then Dm Bb F C typed (D minor: its first
    // chord); the scale lock off, so this is what the models do on their own.
    for (harmony, stored, key) in [
        (unlocked(0, 0), &plain, "C"),
        (unlocked(7, 0), &plain, "G"),
        (
            HarmonySettings {
                typed: true,
                ..unlocked(0, 0)
            },
            &typed,
            "D minor",
        ),
    ] {
        let scale = key.parse::<Key>().unwrap().scale();
        let bass = share_of_note_ons(
            &mut engine,
            Part::Bass,
            (harmony, stored),
            0.5,
            is_chord_tone,
        );
        let melody = share_of_note_ons(
            &mut engine,
            Part::Melody,
            (harmony, stored),
            0.5,
            |_, pitch| scale.contains(pitch),
        );
        println!("{harmony:?}: bass chord tones {bass:.3}, melody in key {melody:.3}");
        assert!(bass > 0.8, "bass chord tones {bass:.3} for {harmony:?}");
        assert!(melody > 0.9, "melody in key {melody:.3} for {harmony:?}");
    }
}

/// The notes of `part` in bars `bars` of `phrase`, with their steps counted
/// from the first of those bars.
fn notes_in_bars(
    phrase: &Phrase,
    part: Part,
    bars: std::ops::Range<usize>,
) -> Vec<(usize, u8, u8)> {
    let steps = bars.start * 16..bars.end * 16;
    phrase
        .part(part)
        .notes()
        .iter()
        .filter(|note| steps.contains(&usize::from(note.step)))
        .map(|note| {
            (
                usize::from(note.step) - steps.start,
                note.pitch,
                note.length_steps,
            )
        })
        .collect()
}

#[test]
fn a_phrase_lasts_as_long_as_its_progression_and_each_bar_follows_its_own_chord() {
    let mut engine = engine();
    let blues = latent_trio::harmony::PRESETS
        .iter()
        .position(|preset| preset.name == "12-bar blues")
        .expect("the blues is a preset");
    for (preset, bars) in [(0, 4), (3, 2), (blues, 12)] {
        let knobs = KnobSnapshot {
            seed: 3,
            harmony: unlocked(7, preset),
            ..KnobSnapshot::default()
        };
        let stored = StoredLatents::default();
        let phrase = decode_with(&mut engine, &knobs, &stored);
        assert_eq!(phrase.bars, bars, "preset {preset}");
        for part in Part::ALL {
            let last = phrase.part(part).notes().last().map_or(0, |n| n.end_step());
            assert!(
                last <= bars * 16,
                "{part:?} ends at step {last} of {bars} bars"
            );
        }
        // The drums repeat their two bars; bass and melody move with the
        // chords, so bars 3-4 of I V vi IV are not bars 1-2 again.
        assert_eq!(
            notes_in_bars(&phrase, Part::Drums, 0..2),
            notes_in_bars(&phrase, Part::Drums, bars - 2..bars),
            "drums of preset {preset}"
        );
        if bars == 4 {
            assert_ne!(
                notes_in_bars(&phrase, Part::Bass, 0..2),
                notes_in_bars(&phrase, Part::Bass, 2..4),
                "the bass over vi IV plays what it played over I V"
            );
        }
    }
    // In the blues, the bass's roots follow I7 I7 I7 I7 IV7 IV7 I7 I7 V7 IV7
    // I7 V7 (in G): most bars start on a note of their own chord.
    let knobs = KnobSnapshot {
        seed: 5,
        harmony: unlocked(7, blues),
        ..KnobSnapshot::default()
    };
    let stored = StoredLatents::default();
    let progression = latent_trio::engine::harmony(&knobs, &stored).0;
    let phrase = decode_with(&mut engine, &knobs, &stored);
    let fitting = (0..12)
        .filter(|&bar| {
            let first = notes_in_bars(&phrase, Part::Bass, bar..bar + 1);
            first
                .first()
                .is_some_and(|&(_, pitch, _)| progression.chord_at(bar * 16).contains(pitch))
        })
        .count();
    assert!(
        fitting >= 9,
        "{fitting} of 12 blues bars start on a chord tone"
    );
}

#[test]
fn with_the_scale_lock_every_note_is_in_the_key_or_the_chord_at_any_temperature() {
    let mut engine = engine();
    // C major, A minor, and Eb with a borrowed Db (bVII) chord.
    for (key_root, preset) in [(0, 0), (9, 5), (3, 7)] {
        let locked = HarmonySettings {
            key_root,
            preset,
            scale_lock: true,
            played: None,
            typed: false,
        };
        let scale = locked.key().scale();
        for temperature in [0.5, 1.0, MAX_TEMPERATURE] {
            for part in [Part::Bass, Part::Melody] {
                let in_key = share_of_note_ons(
                    &mut engine,
                    part,
                    (locked, &StoredLatents::default()),
                    temperature,
                    |chord, pitch| scale.contains(pitch) || chord.contains(pitch),
                );
                assert_eq!(in_key, 1.0, "{part:?} at {temperature} in {locked:?}");
            }
        }
    }
    // Unlocked, the hottest melody does leave the key now and then: the lock
    // is what keeps it in.
    let free = unlocked(0, 0);
    let scale = free.key().scale();
    let in_key = share_of_note_ons(
        &mut engine,
        Part::Melody,
        (free, &StoredLatents::default()),
        MAX_TEMPERATURE,
        |_, pitch| scale.contains(pitch),
    );
    assert!(in_key < 1.0, "unlocked melody in key {in_key}");
}

#[test]
fn one_broken_model_leaves_the_other_parts_playing() {
    let dir = tempfile::tempdir().unwrap();
    for part in [Part::Drums, Part::Melody] {
        let target = dir.path().join(format!("{}_2bar", part.name()));
        std::fs::create_dir(&target).unwrap();
        for entry in std::fs::read_dir(models().join(format!("{}_2bar", part.name()))).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
        }
    }
    std::fs::create_dir(dir.path().join("bass_2bar")).unwrap();
    std::fs::write(dir.path().join("bass_2bar/manifest.json"), "{ truncated").unwrap();
    let mut engine = Engine::load(dir.path(), ProviderChoice::Cpu).unwrap();
    assert!(matches!(
        engine.parts[Part::Bass.index()],
        Err(ModelError::ManifestSyntax { .. })
    ));
    let phrase = decode(&mut engine, &KnobSnapshot::default());
    assert!(!phrase.part(Part::Drums).is_empty() && !phrase.part(Part::Melody).is_empty());
    assert!(phrase.part(Part::Bass).is_empty());
}

#[test]
fn cuda_requested_without_a_gpu_falls_back_to_the_cpu_and_says_so() {
    let model = load(
        &models().join("drums_2bar"),
        Part::Drums,
        ProviderChoice::Cuda,
    )
    .expect("loads on the CPU");
    assert_eq!(model.provider, Provider::Cpu);
    let note = model.provider_note.expect("the fallback is explained");
    assert!(note.contains("CUDA") && note.contains("CPU"), "{note}");
}

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_latent-trio"))
}

#[test]
fn a_missing_onnx_runtime_is_a_plain_message_not_a_crash() {
    let output = cli()
        .env(
            "LATENT_TRIO_ORT_LIB",
            "/nonexistent/libonnxruntime.so.1.32.0",
        )
        .args(["--models", models().to_str().unwrap(), "info"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("ONNX Runtime was not found") && message.contains("LATENT_TRIO_ORT_LIB"),
        "{message}"
    );
}

#[test]
fn a_file_that_is_not_onnx_runtime_is_reported_as_unusable() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so.1.32.0");
    std::fs::write(&fake, b"\x7fELF but not really").unwrap();
    let output = cli()
        .env("LATENT_TRIO_ORT_LIB", &fake)
        .args(["--models", models().to_str().unwrap(), "info"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("could not be used"), "{message}");
}

#[test]
fn a_morph_plays_scene_a_at_0_and_scene_b_at_1_and_something_between() {
    let mut engine = engine();
    let a_notes = notes(&decode(&mut engine, &greedy(11)));
    let a = Scene {
        latents: engine.last_latents.clone(),
        long: engine.last_latents_long,
    };
    let b_notes = notes(&decode(&mut engine, &greedy(12)));
    let b = Scene {
        latents: engine.last_latents.clone(),
        long: engine.last_latents_long,
    };
    assert_ne!(a_notes, b_notes, "two seeds give two scenes");
    let stored = StoredLatents {
        scenes: [Some(a), Some(b)],
        ..StoredLatents::default()
    };
    let at = |engine: &mut Engine, morph: f32| {
        let knobs = KnobSnapshot {
            scenes_on: true,
            morph,
            // Another seed: a scene keeps its latent whatever the seed.
            ..greedy(99)
        };
        notes(&decode_with(engine, &knobs, &stored))
    };
    assert_eq!(at(&mut engine, 0.0), a_notes);
    assert_eq!(at(&mut engine, 1.0), b_notes);
    let middle = at(&mut engine, 0.5);
    assert!(
        middle != a_notes && middle != b_notes,
        "half-way is new material"
    );
}

#[test]
fn an_imported_clip_latent_is_where_the_knobs_start_from() {
    let mut engine = engine();
    let seed_notes = notes(&decode(&mut engine, &greedy(3)));
    let clip_latent = engine.last_latents.clone();
    let mut stored = StoredLatents::default();
    for part in Part::ALL {
        stored.clips[part.index()] = Some(ClipLatent {
            name: "clip.mid".into(),
            summary: String::new(),
            latent: clip_latent[part.index()].clone(),
            long_latent: Vec::new(),
        });
    }
    // With the clip as base, the seed no longer moves the latent.
    assert_eq!(
        notes(&decode_with(&mut engine, &greedy(40), &stored)),
        seed_notes
    );
    let mut pushed = greedy(40);
    pushed.parts[Part::Drums.index()].principal[0] = 3.0;
    let moved = notes(&decode_with(&mut engine, &pushed, &stored));
    assert_ne!(moved[0], seed_notes[0], "a knob moves away from the clip");
}

#[test]
fn a_part_whose_decode_fails_keeps_its_last_good_notes_and_says_why() {
    let mut engine = engine();
    let knobs = KnobSnapshot::default();
    let good = decode(&mut engine, &knobs);
    assert!(!good.part(Part::Drums).notes().is_empty());
    // A latent of NaN makes the decoder's logits NaN (as NaN weights would).
    let mut stored = StoredLatents::default();
    stored.clips[Part::Drums.index()] = Some(ClipLatent {
        name: "broken.mid".into(),
        summary: String::new(),
        latent: vec![f32::NAN; 128],
        long_latent: Vec::new(),
    });
    let mut phrase = Box::<Phrase>::default();
    let report = engine.decode(&knobs, &stored, &mut phrase, None);
    assert!(
        matches!(
            report.errors[Part::Drums.index()],
            Some(ModelError::NotFinite { .. })
        ),
        "{:?}",
        report.errors
    );
    assert!(report.errors[Part::Bass.index()].is_none());
    assert_eq!(
        phrase.part(Part::Drums).notes(),
        good.part(Part::Drums).notes(),
        "the drums play on"
    );
    assert!(
        report
            .result()
            .unwrap_err()
            .to_string()
            .contains("invalid numbers"),
        "the reason in words"
    );
}

#[test]
fn a_part_whose_knobs_did_not_move_is_not_decoded_again() {
    let mut engine = engine();
    let mut knobs = KnobSnapshot::default();
    let mut phrase = Box::<Phrase>::default();
    let first = engine.decode(&knobs, &StoredLatents::default(), &mut phrase, None);
    assert_eq!(first.decoded, [true; 3]);
    knobs.parts[Part::Bass.index()].principal[0] = 1.5;
    let second = engine.decode(&knobs, &StoredLatents::default(), &mut phrase, None);
    assert_eq!(second.decoded, [false, true, false], "only the bass ran");
}

// ---------------------------------------------------------------- long phrases

/// `greedy(seed)` with the Phrase setting at `bars` bars.
fn long_phrase(seed: u32, bars: usize) -> KnobSnapshot {
    KnobSnapshot {
        phrase: PhraseLength::Bars(bars),
        ..greedy(seed)
    }
}

#[test]
fn every_part_has_a_16_bar_hierarchical_model() {
    let engine = engine();
    for part in Part::ALL {
        let model = engine.long_parts[part.index()]
            .as_ref()
            .unwrap_or_else(|error| panic!("the {} 16-bar model loads: {error}", part.name()));
        assert!(model.manifest.hierarchical);
        assert_eq!(model.bars(), 16);
    }
}

#[test]
fn a_16_bar_phrase_is_the_same_16_bars_every_time() {
    let mut engine = engine();
    let mut knobs = long_phrase(5, 16);
    knobs.parts[Part::Melody.index()].temperature = 0.8;
    let first = decode(&mut engine, &knobs);
    assert_eq!(first.bars, 16);
    // A second engine, so that nothing cached in the first can make them agree.
    let mut other = self::engine();
    assert_eq!(notes(&decode(&mut other, &knobs)), notes(&first));
    assert!(!notes_in_bars(&first, Part::Drums, 8..16).is_empty());
}

#[test]
fn most_16_bar_phrases_are_not_an_8_bar_loop() {
    let mut engine = engine();
    let phrases: Vec<Box<Phrase>> = (1..=8)
        .map(|seed| {
            let knobs = KnobSnapshot {
                phrase: PhraseLength::Bars(16),
                seed,
                ..KnobSnapshot::default()
            };
            decode(&mut engine, &knobs)
        })
        .collect();
    for part in Part::ALL {
        let varied = phrases
            .iter()
            .filter(|phrase| {
                notes_in_bars(phrase, part, 0..8) != notes_in_bars(phrase, part, 8..16)
            })
            .count();
        assert!(
            varied >= 4,
            "the {}: {varied} of 8 phrases vary their second 8 bars",
            part.name()
        );
    }
}

#[test]
fn phrases_of_4_and_8_bars_are_the_first_bars_of_the_16_bar_phrase() {
    let mut engine = engine();
    let whole = decode(&mut engine, &long_phrase(9, 16));
    for bars in [4, 8] {
        let short = decode(&mut engine, &long_phrase(9, bars));
        assert_eq!(short.bars, bars);
        for part in Part::ALL {
            assert_eq!(
                notes_in_bars(&short, part, 0..bars),
                notes_in_bars(&whole, part, 0..bars),
                "{} bars of the {}",
                bars,
                part.name()
            );
        }
    }
    let two = decode(&mut engine, &long_phrase(9, 2));
    assert_eq!(two.bars, 2, "2 bars come from the 2-bar models");
}

#[test]
fn a_knob_moved_at_bar_5_keeps_bars_1_to_5_and_changes_the_later_bars() {
    let mut engine = engine();
    // At the default temperature: sampled, as a musician hears it.
    let at_rest = KnobSnapshot {
        phrase: PhraseLength::Bars(16),
        seed: 3,
        ..KnobSnapshot::default()
    };
    let before = decode(&mut engine, &at_rest);
    let mut moved = at_rest;
    for part in &mut moved.parts {
        part.principal[0] = 2.5;
    }
    let mut phrase = Box::<Phrase>::default();
    // Heard from song bar 21 = phrase bar 5 (0-based) on.
    let report = engine.decode(&moved, &StoredLatents::default(), &mut phrase, Some(21));
    assert_eq!(report.decoded, [true; 3]);
    let whole = decode(&mut self::engine(), &moved);
    for part in Part::ALL {
        assert_eq!(
            notes_in_bars(&phrase, part, 0..5),
            notes_in_bars(&before, part, 0..5),
            "the {}'s bars already heard stay",
            part.name()
        );
        assert_eq!(
            notes_in_bars(&phrase, part, 5..16),
            notes_in_bars(&whole, part, 5..16),
            "the {}'s later bars are the moved knob's",
            part.name()
        );
    }
    assert!(
        Part::ALL
            .iter()
            .all(|&part| notes_in_bars(&phrase, part, 5..16) != notes_in_bars(&before, part, 5..16)),
        "the knob changed every part's later bars"
    );
}

/// Note-ons of `bars` as (step from the first bar, pitch): a bar decoded
/// before the bar after it can end its last note differently, never start one.
fn onsets_in_bars(phrase: &Phrase, part: Part, bars: std::ops::Range<usize>) -> Vec<(usize, u8)> {
    notes_in_bars(phrase, part, bars)
        .into_iter()
        .map(|(step, pitch, _)| (step, pitch))
        .collect()
}

#[test]
fn a_knob_move_decodes_the_bar_heard_next_first_and_the_rest_equals_a_whole_decode() {
    let at_rest = KnobSnapshot {
        phrase: PhraseLength::Bars(16),
        seed: 4,
        ..KnobSnapshot::default()
    };
    let mut moved = at_rest;
    for part in &mut moved.parts {
        part.principal[1] = -2.0;
    }
    let stored = StoredLatents::default();
    // Heard from song bar 37 = phrase bar 5 (0-based) on: in one call ...
    let mut one_call = engine();
    let before = decode(&mut one_call, &at_rest);
    let mut whole = Box::<Phrase>::default();
    one_call.decode(&moved, &stored, &mut whole, Some(37));
    // ... and the bar heard first, then the rest.
    let mut engine = engine();
    decode(&mut engine, &at_rest);
    let mut first = Box::<Phrase>::default();
    let report = engine.decode_first_bars(&moved, &stored, &mut first, 37, 1);
    assert_eq!(report.decoded, [true; 3]);
    assert!(!report.completes_previous, "the first bar is new music");
    assert!(engine.has_unfinished_bars());
    for part in Part::ALL {
        let name = part.name();
        assert_eq!(
            notes_in_bars(&first, part, 0..5),
            notes_in_bars(&before, part, 0..5),
            "the {name}'s bars already heard stay"
        );
        assert_eq!(
            onsets_in_bars(&first, part, 5..6),
            onsets_in_bars(&whole, part, 5..6),
            "the {name}'s bar 6 is the moved knob's at once"
        );
        assert_eq!(
            onsets_in_bars(&first, part, 6..16),
            onsets_in_bars(&before, part, 6..16),
            "until the rest comes, the {name}'s later bars are the previous phrase's"
        );
        assert_ne!(
            onsets_in_bars(&whole, part, 6..16),
            onsets_in_bars(&before, part, 6..16),
            "the knob changes the {name}'s later bars"
        );
    }
    let mut rest = Box::<Phrase>::default();
    let report = engine.decode(&moved, &stored, &mut rest, Some(37));
    assert!(
        report.completes_previous,
        "the rest completes the first bar's phrase"
    );
    assert!(!engine.has_unfinished_bars());
    assert_eq!(
        notes(&rest),
        notes(&whole),
        "bar first, then the rest = one whole decode"
    );
    let report = engine.decode(&moved, &stored, &mut rest, Some(38));
    assert_eq!(report.decoded, [false; 3], "nothing is left to decode");
}

#[test]
fn a_scene_stored_from_a_16_bar_phrase_morphs_only_on_16_bar_phrases() {
    let mut engine = engine();
    let scene = |engine: &mut Engine, knobs: &KnobSnapshot| {
        let notes = notes(&decode(engine, knobs));
        let scene = Scene {
            latents: engine.last_latents.clone(),
            long: engine.last_latents_long,
        };
        (notes, scene)
    };
    let (a_notes, a) = scene(&mut engine, &long_phrase(21, 16));
    let (_, b) = scene(&mut engine, &long_phrase(22, 16));
    assert_eq!(a.long, [true; 3]);
    let stored = StoredLatents {
        scenes: [Some(a), Some(b)],
        ..StoredLatents::default()
    };
    let morph_at = |knobs: KnobSnapshot| KnobSnapshot {
        scenes_on: true,
        morph: 0.0,
        seed: 99,
        ..knobs
    };
    let long = decode_with(&mut engine, &morph_at(long_phrase(99, 16)), &stored);
    assert_eq!(notes(&long), a_notes, "scene A at morph 0");
    let short = decode_with(&mut engine, &morph_at(greedy(99)), &stored);
    assert_eq!(
        notes(&short),
        notes(&decode(&mut engine, &greedy(99))),
        "a 2-bar phrase ignores 16-bar scenes and plays its seed"
    );
}

#[test]
fn without_its_16_bar_model_a_part_plays_long_phrases_from_its_2_bar_model_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    for part in Part::ALL {
        copy_folder(
            &models().join(format!("{}_2bar", part.name())),
            &dir.path().join(format!("{}_2bar", part.name())),
        );
    }
    let mut engine = Engine::load(dir.path(), ProviderChoice::Cpu).unwrap();
    let knobs = long_phrase(4, 8);
    let phrase = decode(&mut engine, &knobs);
    assert_eq!(phrase.bars, 8);
    assert!(!notes_in_bars(&phrase, Part::Drums, 6..8).is_empty());
    let problem = engine
        .long_model_problem(Part::Melody, &knobs)
        .expect("a reason");
    assert!(
        problem.contains("16-bar model could not be loaded"),
        "{problem}"
    );
    assert!(
        engine
            .long_model_problem(Part::Melody, &greedy(4))
            .is_none(),
        "not wanted"
    );
}

#[test]
fn a_16_bar_model_whose_conductor_disagrees_with_its_manifest_is_refused() {
    let error = refusal_of_edited_long_manifest(Part::Melody, |manifest| {
        manifest["graphs"]["conductor"]["outputs"][0]["shape"][1] = 8.into();
    });
    assert!(error.to_string().contains("conductor"), "{error}");
    let error = refusal_of_edited_long_manifest(Part::Drums, |manifest| {
        manifest["graphs"]
            .as_object_mut()
            .unwrap()
            .remove("conductor");
    });
    assert!(
        error.to_string().contains("needs a conductor graph"),
        "{error}"
    );
    let error = refusal_of_edited_long_manifest(Part::Bass, |manifest| {
        manifest["format_version"] = FORMAT_VERSION.into();
    });
    assert!(error.to_string().contains("hierarchical"), "{error}");
}

/// Why a copy of `part`'s 16-bar model does not load once `edit` changed
/// its manifest.
fn refusal_of_edited_long_manifest(
    part: Part,
    edit: impl FnOnce(&mut serde_json::Value),
) -> ModelError {
    refusal_of_edited_folder(&format!("{}_16bar", part.name()), part, edit)
}

/// Up to `count` beats of the Groove MIDI Dataset's held-out (test) split in
/// 4/4, spread over its drummers, as a musician would drop them in.
fn heldout_grooves(count: usize) -> Vec<PathBuf> {
    let groove = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/groove");
    let info = std::fs::read_to_string(groove.join("info.csv"))
        .expect("the Groove MIDI Dataset in ../shared/data (see its README)");
    let beats: Vec<PathBuf> = info
        .lines()
        .map(|line| line.split(',').collect::<Vec<_>>())
        .filter(|row| row.len() > 10 && row[10] == "test" && row[5] == "beat" && row[6] == "4-4")
        .map(|row| groove.join(row[7]))
        .collect();
    let every = (beats.len() / count).max(1);
    beats.into_iter().step_by(every).take(count).collect()
}

/// Share of `tokens`' steps that `model` plays back greedily from the
/// latent it encodes them to.
fn played_back(model: &mut PartModel, tokens: &[i64]) -> f64 {
    let inputs = PartInputs {
        latent: model.encode(tokens, &[]).unwrap(),
        seed: 0,
        temperature: 0.0,
        bars: 2,
        long: false,
        feel: Default::default(),
        harmony: None,
        song: None,
        bar_sources: None,
    };
    let decoded = model.decode_tokens(&inputs, &[], 2).unwrap();
    let same = decoded.iter().zip(tokens).filter(|(a, b)| a == b).count();
    same as f64 / tokens.len() as f64
}

#[test]
fn an_imported_groove_plays_back_more_faithfully_from_its_refined_latent() {
    let mut refined = load(
        &models().join("drums_2bar"),
        Part::Drums,
        ProviderChoice::Cpu,
    )
    .unwrap();
    assert!(
        refined.manifest.refinement.is_some(),
        "the drums refine their latents"
    );
    let plain_folder = folder_copy("drums_2bar");
    let path = plain_folder.path().join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    manifest["refinement"] = serde_json::Value::Null;
    manifest["graphs"]["latent_gradient"] = serde_json::Value::Null;
    std::fs::write(&path, manifest.to_string()).unwrap();
    let mut plain = load(plain_folder.path(), Part::Drums, ProviderChoice::Cpu).unwrap();
    let (mut from_refined, mut from_plain) = (Vec::new(), Vec::new());
    for groove in heldout_grooves(12) {
        let clip = read_clip(&groove, Part::Drums, refined.vocabulary()).unwrap();
        let window = &clip.tokens[..clip.tokens.len().min(32)];
        if window.len() < 32 {
            continue;
        }
        from_refined.push(played_back(&mut refined, window));
        from_plain.push(played_back(&mut plain, window));
    }
    assert!(
        from_refined.len() >= 10,
        "{} grooves read",
        from_refined.len()
    );
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    let better = from_refined
        .iter()
        .zip(&from_plain)
        .filter(|(r, p)| r >= p)
        .count();
    assert!(
        mean(&from_refined) >= mean(&from_plain) + 0.04 && better * 4 >= from_refined.len() * 3,
        "steps played back: refined {:.3}, encoder mean {:.3}; refined as good or better on {better} of {}",
        mean(&from_refined),
        mean(&from_plain),
        from_refined.len()
    );
}

#[test]
fn a_latent_gradient_without_its_refinement_settings_or_of_the_wrong_shape_is_refused() {
    let error = refusal_of_edited_manifest(Part::Drums, |manifest| {
        manifest["refinement"] = serde_json::Value::Null;
    });
    assert!(error.to_string().contains("come together"), "{error}");
    let error = refusal_of_edited_manifest(Part::Melody, |manifest| {
        manifest["refinement"]["steps"] = 5000.into();
    });
    assert!(error.to_string().contains("out of range"), "{error}");
    let error = refusal_of_edited_manifest(Part::Bass, |manifest| {
        manifest["graphs"]["latent_gradient"]["outputs"][0]["shape"][1] = 64.into();
    });
    assert!(
        error.to_string().contains("gradient: float32[1, 64]"),
        "{error}"
    );
}
