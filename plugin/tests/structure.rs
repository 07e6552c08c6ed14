//! Context transfer with the committed melody Transformer VAE and the real
//! ONNX Runtime: the melody follows the structure of a clip (repeats its own
//! bars where the clip repeats its own), the same every time and after a
//! project reload, a broken model is refused while the melody plays on, and
//! the window's Follow structure reaches the worker and the next phrase.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latent_trio::bridge::{DecodeRequest, bridge};

use latent_trio::engine::runtime::ProviderChoice;
use latent_trio::engine::structure::{STRUCTURE_MODEL_FOLDER, repeats};
use latent_trio::engine::tokens::tokens_to_notes;
use latent_trio::engine::worker::{
    self, EngineStatus, StructureSource, WorkerCommand, WorkerSettings,
};
use latent_trio::engine::{Engine, PartInputs};
use latent_trio::knobs::{KnobSnapshot, PhraseLength};
use latent_trio::midi_file::{self, TimedNote, Track};
use latent_trio::pattern::{Part, PartPhrase, Phrase, STEPS_PER_BAR};
use latent_trio::sequencer::clock::Meter;
use latent_trio::stored::{Scene, SharedStoredLatents, StoredLatents};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn engine_from(models: &Path) -> Engine {
    Engine::load(models, ProviderChoice::Cpu)
        .expect("ONNX Runtime loads (run `cargo xtask fetch-onnxruntime`)")
}

fn engine() -> Engine {
    let engine = engine_from(&models());
    if let Err(error) = &engine.structure_model {
        panic!("the committed {STRUCTURE_MODEL_FOLDER} must load: {error}");
    }
    engine
}

/// 16-bar phrases from seed `seed` (the default temperature: greedy
/// decoding of these models mostly rests).
fn sixteen_bars(seed: u32) -> KnobSnapshot {
    KnobSnapshot {
        seed,
        phrase: PhraseLength::Bars(16),
        ..KnobSnapshot::default()
    }
}

/// The melody's notes bar by bar: (step in the bar, pitch, length).
fn melody_bars(
    engine: &mut Engine,
    knobs: &KnobSnapshot,
    stored: &StoredLatents,
) -> Vec<Vec<(usize, u8, u8)>> {
    let mut phrase = Box::<Phrase>::default();
    engine
        .decode(knobs, stored, &mut phrase, None)
        .result()
        .expect("decodes");
    let mut bars = vec![Vec::new(); phrase.bars];
    for note in phrase.part(Part::Melody).notes() {
        let step = usize::from(note.step);
        bars[step / STEPS_PER_BAR].push((step % STEPS_PER_BAR, note.pitch, note.length_steps));
    }
    bars
}

/// Writes a 4-bar melody of the plugin's own 16-bar model (the first seed
/// from `seed` on with notes in every bar) played twice, bars 5-8 repeating
/// bars 1-4, as a .mid clip.
fn repeating_clip(engine: &mut Engine, seed: u32, path: &Path) {
    let notes_in_every_bar = |tokens: &[i64]| {
        tokens
            .chunks(STEPS_PER_BAR)
            .all(|bar| bar.iter().any(|&t| t >= 2))
    };
    let mut four_bars = Vec::new();
    for seed in seed.. {
        let knobs = KnobSnapshot {
            phrase: PhraseLength::Bars(4),
            ..sixteen_bars(seed)
        };
        let inputs: PartInputs = engine
            .part_inputs(Part::Melody, &knobs, &StoredLatents::default())
            .unwrap();
        let model = engine.long_parts[Part::Melody.index()].as_mut().unwrap();
        four_bars = model.decode_tokens(&inputs, &[], 4).unwrap();
        if notes_in_every_bar(&four_bars) {
            break;
        }
    }
    let model = engine.long_parts[Part::Melody.index()].as_ref().unwrap();
    let tokens: Vec<i64> = four_bars.iter().chain(&four_bars).copied().collect();
    let mut phrase = PartPhrase::default();
    tokens_to_notes(model.vocabulary(), &tokens, STEPS_PER_BAR, &mut phrase);
    let tick = |step: usize| step as u64 * 120;
    let mut notes = Vec::new();
    for note in phrase.notes() {
        let on = TimedNote {
            tick: tick(note.step.into()),
            channel: 0,
            pitch: note.pitch,
            velocity: 100,
        };
        notes.push(on);
        notes.push(TimedNote {
            tick: tick(note.end_step()),
            velocity: 0,
            ..on
        });
    }
    notes.sort_by_key(|n| (n.tick, n.velocity > 0));
    let track = Track {
        name: "structure".into(),
        notes,
    };
    midi_file::write(path, 120.0, Meter::default(), &[track]).unwrap();
}

#[test]
fn repeats_are_bars_with_notes_that_an_earlier_bar_plays_note_for_note() {
    let bar = |pitch: i64| {
        let mut bar = vec![1i64; STEPS_PER_BAR];
        bar[0] = pitch;
        bar[3] = 0;
        bar
    };
    let rest = vec![1i64; STEPS_PER_BAR];
    // A bar ending the note held over from the bar before is still a repeat.
    let mut held = bar(45);
    held[0] = 0;
    held[2] = 45;
    let mut late = bar(45);
    late[0] = 1;
    late[2] = 45;
    let tokens: Vec<i64> = [
        bar(40),
        late.clone(),
        bar(40),
        rest.clone(),
        rest,
        late,
        held,
    ]
    .concat();
    assert_eq!(repeats(&tokens), vec![(2, 0), (5, 1), (6, 1)]);
}

#[test]
fn a_melody_following_a_clip_that_repeats_bars_1_to_4_repeats_its_own_bars_there() {
    let mut engine = engine();
    let dir = tempfile::tempdir().unwrap();
    let mut repeated_bars = 0;
    let mut tried = 0;
    for (clip_seed, seed) in [(11, 3), (12, 5), (13, 8), (14, 21)] {
        let path = dir.path().join(format!("clip{clip_seed}.mid"));
        repeating_clip(&mut engine, clip_seed, &path);
        let knobs = sixteen_bars(seed);
        let plain = StoredLatents::default();
        let structure = engine
            .follow_structure(&path, &knobs, &plain)
            .expect("the clip's structure is followed");
        // The 8-bar clip looped to 16 bars: bars 5-16 repeat earlier ones
        // (a note tied over a bar line makes one of them a variation).
        let repeated: usize = structure
            .summary
            .split("; ")
            .nth(1)
            .and_then(|text| text.split(' ').next()?.parse().ok())
            .unwrap_or(0);
        assert!(
            structure.summary.starts_with("bars 1-8") && repeated >= 10,
            "{}",
            structure.summary
        );
        let stored = StoredLatents {
            structure: Some(structure),
            ..StoredLatents::default()
        };
        let followed = melody_bars(&mut engine, &knobs, &stored);
        let own = melody_bars(&mut engine, &knobs, &plain);
        assert_ne!(followed, own, "the structure changes the melody");
        for bar in 4..8 {
            tried += 1;
            if followed[bar] == followed[bar - 4] {
                repeated_bars += 1;
            }
        }
        // The same settings play the same notes, also after a project reload.
        let reloaded: StoredLatents =
            serde_json::from_str(&serde_json::to_string(&stored).unwrap()).unwrap();
        assert_eq!(melody_bars(&mut engine, &knobs, &reloaded), followed);
    }
    println!("bars 5-8 repeating bars 1-4 note for note: {repeated_bars} of {tried}");
    assert!(
        repeated_bars * 2 >= tried,
        "only {repeated_bars} of {tried} bars repeat"
    );
}

#[test]
fn a_broken_transformer_vae_is_refused_with_the_reason_and_the_melody_plays_on() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(models()).unwrap() {
        let entry = entry.unwrap();
        let target = dir.path().join(entry.file_name());
        if entry.file_name() == STRUCTURE_MODEL_FOLDER {
            std::fs::create_dir(&target).unwrap();
            for file in std::fs::read_dir(entry.path()).unwrap() {
                let file = file.unwrap();
                std::fs::copy(file.path(), target.join(file.file_name())).unwrap();
            }
            let manifest = target.join("manifest.json");
            let mut json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
            json["bar_latents"]["size"] = 63.into();
            std::fs::write(&manifest, json.to_string()).unwrap();
        } else if entry.path().is_dir() {
            std::os::unix::fs::symlink(entry.path(), &target).unwrap();
        }
    }
    let mut engine = engine_from(dir.path());
    let error = engine
        .structure_model
        .as_ref()
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("Transformer VAE's latent"), "{error}");
    let clip = dir.path().join("clip.mid");
    let mut working = engine_from(&models());
    repeating_clip(&mut working, 11, &clip);
    let knobs = sixteen_bars(3);
    let refused = engine
        .follow_structure(&clip, &knobs, &StoredLatents::default())
        .map(|structure| structure.summary)
        .expect_err("nothing to follow it with")
        .to_string();
    assert!(refused.contains("Transformer VAE"), "{refused}");
    // A project that follows a structure still plays its melody (from the
    // 16-bar model) where the Transformer VAE is missing.
    let structure = working
        .follow_structure(&clip, &knobs, &StoredLatents::default())
        .unwrap();
    let stored = StoredLatents {
        structure: Some(structure),
        ..StoredLatents::default()
    };
    let bars = melody_bars(&mut engine, &knobs, &stored);
    assert!(bars.iter().any(|bar| !bar.is_empty()));
}

/// The melody's note-ons of a phrase: (step, pitch).
fn melody_onsets(phrase: &Phrase) -> Vec<(u16, u8)> {
    phrase
        .part(Part::Melody)
        .notes()
        .iter()
        .map(|note| (note.step, note.pitch))
        .collect()
}

#[test]
fn the_window_s_follow_structure_reaches_the_worker_and_the_next_phrase_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mid");
    let mut engine = engine();
    repeating_clip(&mut engine, 11, &clip);
    let (audio, worker_side) = bridge();
    let status = Arc::new(EngineStatus::default());
    let stored = Arc::new(SharedStoredLatents::default());
    let (commands, receiver) = crossbeam_channel::unbounded();
    let _worker = worker::spawn(
        worker_side,
        WorkerSettings {
            models: Some(models()),
            provider_choice: Box::new(|| ProviderChoice::Cpu),
            status: status.clone(),
            stored: stored.clone(),
            commands: receiver,
        },
    )
    .unwrap();
    let mut knobs = sixteen_bars(3);
    let ask = |id: u64, knobs: KnobSnapshot| {
        assert!(audio.request(DecodeRequest {
            id,
            knobs,
            offline: true
        }));
        let phrase = audio
            .receive_within(Duration::from_secs(60))
            .expect("a phrase");
        let onsets = melody_onsets(&phrase);
        assert!(audio.give_back(phrase).is_ok());
        onsets
    };
    let before = ask(1, knobs);
    commands
        .send(WorkerCommand::FollowStructure(StructureSource::Clip(
            clip.clone(),
        )))
        .unwrap();
    let started = Instant::now();
    while stored.get().structure.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            status.notice()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        status
            .notice()
            .starts_with("Melody follows the structure of clip.mid"),
        "{}",
        status.notice()
    );
    knobs.stored_revision = stored.revision();
    let after = ask(2, knobs);
    assert_ne!(after, before, "the next phrase follows the clip");
    // What the engine plays for the stored structure, note for note.
    let mut phrase = Box::<Phrase>::default();
    engine
        .decode(&knobs, &stored.get(), &mut phrase, None)
        .result()
        .unwrap();
    assert_eq!(after, melody_onsets(&phrase));
}

#[test]
fn a_stored_scene_s_melody_can_be_followed_and_an_empty_scene_is_explained() {
    let mut engine = engine();
    let knobs = sixteen_bars(3);
    let scene_melody = engine
        .part_inputs(Part::Melody, &sixteen_bars(12), &StoredLatents::default())
        .unwrap();
    assert!(
        scene_melody.long,
        "16-bar phrases store the 16-bar model's latent"
    );
    let stored = StoredLatents {
        scenes: [
            Some(Scene {
                latents: [Vec::new(), Vec::new(), scene_melody.latent],
                long: [false, false, true],
            }),
            None,
        ],
        ..StoredLatents::default()
    };
    let structure = engine
        .follow_scene_structure(0, &knobs, &stored)
        .expect("scene A's melody is followed");
    assert_eq!(structure.name, "scene A");
    assert!(
        structure.summary.starts_with("its melody's 16 bars; "),
        "{}",
        structure.summary
    );
    let followed = StoredLatents {
        structure: Some(structure),
        ..stored.clone()
    };
    assert_ne!(
        melody_bars(&mut engine, &knobs, &followed),
        melody_bars(&mut engine, &knobs, &stored)
    );
    let error = engine
        .follow_scene_structure(1, &knobs, &stored)
        .map(|structure| structure.summary)
        .expect_err("scene B is empty")
        .to_string();
    assert_eq!(error, "scene B holds no melody; store it first");
}
