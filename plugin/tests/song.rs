//! Song mode's engine with the real ONNX Runtime and the committed song
//! prior: songs written from a seed, bars re-rolled around locked ones, and
//! a broken prior refused without silencing the phrases.

use std::path::{Path, PathBuf};

use latent_trio::engine::runtime::ProviderChoice;
use latent_trio::engine::song::{SONG_BARS, SONG_SLOTS};
use latent_trio::engine::{Engine, SONG_PRIOR_FOLDERS};
use latent_trio::harmony::{Chord, HarmonySettings, Progression};
use latent_trio::knobs::{KnobSnapshot, PhraseLength};
use latent_trio::pattern::{Part, Phrase, STEPS_PER_BAR};
use latent_trio::stored::{Song, StoredLatents};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn engine_from(models: &Path) -> Engine {
    Engine::load(models, ProviderChoice::Cpu)
        .expect("ONNX Runtime loads (run `cargo xtask fetch-onnxruntime`)")
}

/// The melody's prior.
const MELODY: usize = 1;
/// The bass's own prior.
const BASS: usize = 2;

fn engine() -> Engine {
    let engine = engine_from(&models());
    if let Err(error) = &engine.song_priors[MELODY] {
        panic!(
            "the committed {} must load: {error}",
            SONG_PRIOR_FOLDERS[MELODY]
        );
    }
    engine
}

/// The progression the plugin plays by default.
fn progression() -> Progression {
    KnobSnapshot::default().harmony.progression()
}

/// Every note-on of `part` over the song's 64 bars in Song mode under
/// `knobs` (with `song` stored, as after a re-roll): (step, pitch).
fn song_onsets(
    engine: &mut Engine,
    song: &Song,
    knobs: &KnobSnapshot,
    part: Part,
) -> Vec<(usize, u8)> {
    let stored = StoredLatents {
        song: Some(song.clone()),
        ..StoredLatents::default()
    };
    let knobs = KnobSnapshot {
        phrase: PhraseLength::Song,
        seed: song.seed,
        ..*knobs
    };
    let mut phrase = Box::<Phrase>::default();
    engine
        .decode(&knobs, &stored, &mut phrase, None)
        .result()
        .expect("decodes");
    assert_eq!(phrase.bars, SONG_BARS);
    phrase
        .part(part)
        .notes()
        .iter()
        .map(|note| (usize::from(note.step), note.pitch))
        .collect()
}

fn in_bars(onsets: &[(usize, u8)], bars: std::ops::Range<usize>) -> Vec<(usize, u8)> {
    let steps = bars.start * STEPS_PER_BAR..bars.end * STEPS_PER_BAR;
    onsets
        .iter()
        .copied()
        .filter(|(step, _)| steps.contains(step))
        .collect()
}

#[test]
fn the_same_seed_writes_the_same_song_and_another_seed_another() {
    let mut engine = engine();
    let song = engine.write_song(7, &progression(), None).unwrap();
    assert_eq!(engine.write_song(7, &progression(), None).unwrap(), song);
    let other = engine.write_song(8, &progression(), None).unwrap();
    for part in [Part::Bass, Part::Melody] {
        let slots = song.latents[part.index()]
            .as_ref()
            .expect("the prior writes it");
        assert_eq!(slots.len(), SONG_SLOTS);
        assert_ne!(Some(slots), other.latents[part.index()].as_ref());
        // A song, not one loop: its slots differ from each other.
        assert!(slots.iter().skip(1).any(|slot| slot != &slots[0]));
    }
    let knobs = KnobSnapshot::default();
    let melody = song_onsets(&mut engine, &song, &knobs, Part::Melody);
    assert!(
        melody.len() > 64,
        "{} melody notes in 64 bars",
        melody.len()
    );
    assert_eq!(
        song_onsets(&mut engine, &song, &knobs, Part::Melody),
        melody
    );
}

#[test]
fn re_rolling_bars_17_to_48_keeps_every_other_bar_note_for_note() {
    let mut engine = engine();
    let song = engine.write_song(3, &progression(), None).unwrap();
    let mut locked = [true; SONG_SLOTS];
    locked[8..24].fill(false);
    let rerolled = engine
        .write_song(3, &progression(), Some((&song, &locked)))
        .unwrap();
    assert_eq!(
        (rerolled.seed, rerolled.take),
        (3, 1),
        "the same seed's next take"
    );
    let knobs = KnobSnapshot::default();
    for part in [Part::Bass, Part::Melody] {
        let (before, after) = (
            song.latents[part.index()].as_ref().unwrap(),
            rerolled.latents[part.index()].as_ref().unwrap(),
        );
        for slot in 0..SONG_SLOTS {
            assert_eq!(
                before[slot] == after[slot],
                locked[slot],
                "slot {slot} of the {}",
                part.name()
            );
        }
        let (heard, again) = (
            song_onsets(&mut engine, &song, &knobs, part),
            song_onsets(&mut engine, &rerolled, &knobs, part),
        );
        for bars in [0..16, 48..64] {
            assert_eq!(
                in_bars(&heard, bars.clone()),
                in_bars(&again, bars),
                "the {}",
                part.name()
            );
        }
        assert_ne!(
            in_bars(&heard, 16..48),
            in_bars(&again, 16..48),
            "the {}'s re-rolled bars",
            part.name()
        );
    }
}

#[test]
fn a_knob_moves_most_slots_of_the_song() {
    let mut engine = engine();
    let song = engine.write_song(5, &progression(), None).unwrap();
    let rest = KnobSnapshot::default();
    let mut moved = rest;
    moved.parts[Part::Melody.index()].principal[0] = 2.5;
    let (before, after) = (
        song_onsets(&mut engine, &song, &rest, Part::Melody),
        song_onsets(&mut engine, &song, &moved, Part::Melody),
    );
    let slot = |onsets: &[(usize, u8)], slot: usize| in_bars(onsets, slot * 2..slot * 2 + 2);
    let playing: Vec<usize> = (0..SONG_SLOTS)
        .filter(|&s| !slot(&before, s).is_empty() || !slot(&after, s).is_empty())
        .collect();
    let changed = playing
        .iter()
        .filter(|&&s| slot(&before, s) != slot(&after, s))
        .count();
    assert!(
        changed * 2 > playing.len(),
        "the knob changed {changed} of the {} slots with notes",
        playing.len()
    );
    assert_eq!(
        song_onsets(&mut engine, &song, &rest, Part::Bass),
        song_onsets(&mut engine, &song, &moved, Part::Bass),
        "a melody knob leaves the bass alone"
    );
}

/// The models folder with the folder of prior `prior` (an index into
/// `SONG_PRIOR_FOLDERS`) changed by `break_it`.
fn models_with_broken_prior(prior: usize, break_it: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut break_it = Some(break_it);
    for entry in std::fs::read_dir(models()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let target = dir.path().join(&name);
        if name == SONG_PRIOR_FOLDERS[prior] {
            std::fs::create_dir(&target).unwrap();
            for file in std::fs::read_dir(entry.path()).unwrap() {
                let file = file.unwrap();
                std::fs::copy(file.path(), target.join(file.file_name())).unwrap();
            }
            if let Some(break_it) = break_it.take() {
                break_it(&target);
            }
        } else if entry.path().is_dir() {
            std::os::unix::fs::symlink(entry.path(), &target).unwrap();
        }
    }
    dir
}

/// A way to damage a copy of the prior's folder.
type Breakage = Box<dyn FnOnce(&Path)>;

#[test]
fn a_broken_song_prior_is_refused_with_the_reason_and_phrases_play_on() {
    let cases: [(&str, Breakage); 6] = [
        (
            "the denoiser must map",
            Box::new(|folder| {
                edit_manifest(folder, |m| {
                    m["graphs"]["denoiser"]["outputs"][0]["name"] = "eps".into()
                })
            }),
        ),
        (
            "harmony [batch, 32, 13]",
            Box::new(|folder| {
                edit_manifest(folder, |m| {
                    m["graphs"]["denoiser"]["inputs"]
                        .as_array_mut()
                        .unwrap()
                        .truncate(4)
                })
            }),
        ),
        (
            "13 values",
            Box::new(|folder| edit_manifest(folder, |m| m["harmony"]["size"] = 12.into())),
        ),
        (
            "denoiser.onnx",
            Box::new(|folder| {
                std::fs::write(folder.join("denoiser.onnx"), b"not a model").unwrap()
            }),
        ),
        (
            "scaling",
            Box::new(|folder| {
                edit_manifest(folder, |m| {
                    m["scaling"]["low"].as_array_mut().unwrap().truncate(3)
                })
            }),
        ),
        (
            "format 1",
            Box::new(|folder| edit_manifest(folder, |m| m["format_version"] = 1.into())),
        ),
    ];
    for (what, break_it) in cases {
        let dir = models_with_broken_prior(MELODY, break_it);
        let mut engine = engine_from(dir.path());
        let error = engine.song_priors[MELODY]
            .as_ref()
            .err()
            .unwrap_or_else(|| panic!("{what} accepted"))
            .to_string();
        let expected = match what {
            "format 1" => "song prior format 1",
            other => other,
        };
        assert!(error.contains(expected), "{what}: {error}");
        let mut phrase = Box::<Phrase>::default();
        engine
            .decode(
                &KnobSnapshot::default(),
                &StoredLatents::default(),
                &mut phrase,
                None,
            )
            .result()
            .expect("phrases play on");
        assert!(!phrase.part(Part::Melody).is_empty());
        // Song mode without the shared prior: the melody loops its phrase.
        let song = engine.write_song(1, &progression(), None).unwrap();
        assert!(song.latents[Part::Melody.index()].is_none());
    }
}

#[test]
fn song_mode_writes_the_melody_for_the_progression_it_is_played_over_and_the_drums_for_any() {
    let mut engine = engine();
    let in_c = KnobSnapshot::default();
    // In E, without the scale lock: the song and the chords keep the notes in key.
    let in_e = KnobSnapshot {
        harmony: HarmonySettings {
            key_root: 4,
            scale_lock: false,
            ..in_c.harmony
        },
        ..in_c
    };
    let c_song = engine
        .write_song(6, &in_c.harmony.progression(), None)
        .unwrap();
    let e_song = engine
        .write_song(6, &in_e.harmony.progression(), None)
        .unwrap();
    assert_eq!(
        c_song.latents[Part::Drums.index()],
        e_song.latents[Part::Drums.index()],
        "the drums' prior hears no chords"
    );
    assert_ne!(
        c_song.latents[Part::Melody.index()],
        e_song.latents[Part::Melody.index()],
        "the melody's prior writes for the chords of E"
    );
    let melody = song_onsets(&mut engine, &e_song, &in_e, Part::Melody);
    let scale = in_e.harmony.key().scale();
    let in_key = melody
        .iter()
        .filter(|(_, pitch)| scale.contains(*pitch))
        .count();
    assert!(
        in_key as f32 >= 0.95 * melody.len() as f32,
        "{in_key} of the melody's {} notes in 64 bars are in E major",
        melody.len()
    );
}

#[test]
fn a_chord_played_in_changes_what_the_song_is_played_over_not_the_song() {
    let mut engine = engine();
    let knobs = KnobSnapshot {
        phrase: PhraseLength::Song,
        seed: 12,
        ..KnobSnapshot::default()
    };
    let stored = StoredLatents::default();
    let song = engine.song(&knobs, &stored).unwrap();
    for chord in [Chord::minor(9), Chord::major(5)] {
        let playing = KnobSnapshot {
            harmony: HarmonySettings {
                played: Some(chord),
                ..knobs.harmony
            },
            ..knobs
        };
        assert_eq!(
            engine.song(&playing, &stored).unwrap(),
            song,
            "a performer's chord change keeps the song's material"
        );
    }
}

#[test]
fn each_part_comes_from_its_own_prior_and_a_broken_one_leaves_the_others_alone() {
    let mut engine = engine();
    assert!(
        engine.song_priors[BASS].is_ok(),
        "the committed bass prior loads"
    );
    let song = engine.write_song(4, &progression(), None).unwrap();
    assert!(
        Part::ALL
            .iter()
            .all(|part| song.latents[part.index()].is_some()),
        "every part has a song"
    );
    let dir = models_with_broken_prior(BASS, |folder| {
        std::fs::write(folder.join("denoiser.onnx"), b"not a model").unwrap()
    });
    let mut without = engine_from(dir.path());
    assert!(without.song_priors[BASS].is_err());
    let rest = without.write_song(4, &progression(), None).unwrap();
    assert!(
        rest.latents[Part::Bass.index()].is_none(),
        "no other prior writes the bass: it loops its phrase"
    );
    for part in [Part::Drums, Part::Melody] {
        assert_eq!(
            rest.latents[part.index()],
            song.latents[part.index()],
            "{part:?} is its own prior's song either way"
        );
    }
}

fn edit_manifest(folder: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = folder.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(&path, manifest.to_string()).unwrap();
}

#[test]
fn a_clip_put_into_a_slot_plays_there_and_a_re_roll_around_it_keeps_it() {
    let mut engine = engine();
    let song = engine.write_song(9, &progression(), None).unwrap();
    // A melody latent from another song stands in for an imported clip.
    let clip = engine.write_song(10, &progression(), None).unwrap().latents[Part::Melody.index()]
        .as_ref()
        .unwrap()[3]
        .clone();
    let with_clip = engine
        .song_with_clip(
            &KnobSnapshot {
                seed: 9,
                ..KnobSnapshot::default()
            },
            &StoredLatents::default(),
            Part::Melody,
            5,
            &clip,
        )
        .unwrap()
        .expect("the melody has a song prior");
    assert_eq!((with_clip.seed, with_clip.take), (9, 1));
    let melody = |song: &Song| song.latents[Part::Melody.index()].clone().unwrap();
    assert_eq!(melody(&with_clip)[5], clip);
    assert_eq!(
        with_clip.latents[Part::Bass.index()],
        song.latents[Part::Bass.index()]
    );
    let knobs = KnobSnapshot::default();
    let (before, after) = (
        song_onsets(&mut engine, &song, &knobs, Part::Melody),
        song_onsets(&mut engine, &with_clip, &knobs, Part::Melody),
    );
    assert_ne!(
        in_bars(&before, 10..12),
        in_bars(&after, 10..12),
        "bars 11-12 play the clip"
    );
    assert_eq!(in_bars(&before, 0..10), in_bars(&after, 0..10));
    assert_eq!(in_bars(&before, 12..64), in_bars(&after, 12..64));
    let mut locked = [false; SONG_SLOTS];
    locked[5] = true;
    let rerolled = engine
        .write_song(9, &progression(), Some((&with_clip, &locked)))
        .unwrap();
    assert_eq!(
        melody(&rerolled)[5],
        clip,
        "the clip's slot survives a re-roll"
    );
    assert_ne!(melody(&rerolled)[4], melody(&with_clip)[4]);
}
