//! Decode latency on the CPU provider with one intra-op thread: model load,
//! one 2-bar phrase per part (over a 2-bar progression), one 16-bar phrase
//! from the hierarchical models (whole, and from bar 9 or bar 16 on, as after
//! a knob move, and bar 9 alone), the humanize model on one 2-bar window,
//! and a knob move -> phrase ready (the default 4-bar progression, and 16-bar
//! phrases) through the real worker thread and bridge; while playing 16-bar
//! phrases, a knob move -> the next bar ready, then the rest.
//!
//! Run: `cargo bench -p latent_trio --bench decode` (the committed models;
//! `LATENT_TRIO_MODELS=<folder>` measures others, as the plugin would load them)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latent_trio::bridge::{DecodeRequest, bridge};
use latent_trio::engine::Engine;
use latent_trio::engine::runtime::{MODELS_ENV, ProviderChoice};
use latent_trio::engine::worker::{self, EngineStatus, WorkerSettings};
use latent_trio::harmony::{HarmonySettings, PRESETS};
use latent_trio::knobs::{KnobSnapshot, PhraseLength};
use latent_trio::pattern::{Part, PartPhrase, Phrase};
use latent_trio::stored::{FollowedStructure, StoredLatents};

const RUNS: usize = 200;

fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    format!(
        "median {:.3} ms, p10 {:.3}, p90 {:.3}, max {:.3} ({} runs)",
        ms(at(0.5)),
        ms(at(0.1)),
        ms(at(0.9)),
        ms(*times.last().unwrap()),
        times.len()
    )
}

fn main() {
    let models = std::env::var_os(MODELS_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"));
    println!("models: {}", models.display());
    let started = Instant::now();
    let mut engine =
        Engine::load(&models, ProviderChoice::Cpu).expect("ONNX Runtime and models load");
    println!(
        "load ONNX Runtime + 3 2-bar, 3 16-bar and 3 humanize models (24 sessions): {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    let stored = StoredLatents::default();
    // "I IV": one chord a bar over 2 bars, so one model segment a phrase.
    let two_bars = HarmonySettings {
        preset: PRESETS
            .iter()
            .position(|preset| preset.name == "I IV")
            .expect("a 2-bar preset"),
        ..HarmonySettings::default()
    };
    for part in Part::ALL {
        let mut out = PartPhrase::default();
        let times: Vec<Duration> = (0..RUNS)
            .map(|run| {
                let started = Instant::now();
                let knobs = KnobSnapshot {
                    seed: run as u32,
                    harmony: two_bars,
                    ..KnobSnapshot::default()
                };
                let inputs = engine
                    .part_inputs(part, &knobs, &stored)
                    .unwrap_or_else(|| panic!("{} model missing", part.name()));
                let Ok(model) = &mut engine.parts[part.index()] else {
                    unreachable!("the inputs came from this model");
                };
                model.decode(&inputs, &mut out).unwrap();
                started.elapsed()
            })
            .collect();
        println!("{:<7} one 2-bar phrase: {}", part.name(), summary(times));
        // MIDI import: a 2-bar clip encoded (and refined, where the model
        // has a latent gradient graph) over the progression; the time does
        // not depend on the notes.
        let Ok(model) = &mut engine.parts[part.index()] else {
            unreachable!("it decoded above");
        };
        let clip = vec![1; 32];
        let progression = two_bars.progression();
        let chords: Vec<_> = (0..32).map(|step| progression.chord_at(step)).collect();
        let times: Vec<Duration> = (0..RUNS / 10)
            .map(|_| {
                let started = Instant::now();
                model.encode(&clip, &chords).unwrap();
                started.elapsed()
            })
            .collect();
        let refinement = model
            .manifest
            .refinement
            .map_or("encoder mean only".to_string(), |refinement| {
                format!("{} refinement steps", refinement.steps)
            });
        println!(
            "{:<7} encode a 2-bar clip ({refinement}): {}",
            part.name(),
            summary(times)
        );
        // (first bar, bars): the whole phrase; the rest from bar 9 or bar 16
        // on, as after a knob move; bar 9 alone, the bar a knob move needs
        // first.
        for (from_bar, bars) in [(0, 16), (8, 8), (15, 1), (8, 1)] {
            let times: Vec<Duration> = (0..RUNS)
                .map(|run| {
                    let knobs = KnobSnapshot {
                        seed: run as u32,
                        phrase: PhraseLength::Bars(16),
                        ..KnobSnapshot::default()
                    };
                    let inputs = engine.part_inputs(part, &knobs, &stored).unwrap();
                    let kept = vec![1; from_bar * 16];
                    let Ok(model) = &mut engine.long_parts[part.index()] else {
                        panic!("{} 16-bar model missing", part.name());
                    };
                    let started = Instant::now();
                    model
                        .decode_tokens(&inputs, &kept, from_bar + bars)
                        .unwrap();
                    started.elapsed()
                })
                .collect();
            println!(
                "{:<7} 16-bar phrase, bars {}-{} ({} bars): {}",
                part.name(),
                from_bar + 1,
                from_bar + bars,
                bars,
                summary(times)
            );
        }
        let tokens = {
            let knobs = KnobSnapshot {
                harmony: two_bars,
                ..KnobSnapshot::default()
            };
            let inputs = engine.part_inputs(part, &knobs, &stored).unwrap();
            let Ok(model) = &mut engine.parts[part.index()] else {
                unreachable!("the inputs came from this model");
            };
            model.decode_tokens(&inputs, &[], inputs.bars).unwrap()
        };
        match &mut engine.humanizers[part.index()] {
            Ok(humanizer) => {
                let times: Vec<Duration> = (0..RUNS)
                    .map(|_| {
                        let started = Instant::now();
                        humanizer.perform(&tokens).unwrap();
                        started.elapsed()
                    })
                    .collect();
                println!(
                    "{:<7} humanize one 2-bar window: {}",
                    part.name(),
                    summary(times)
                );
            }
            Err(error) => println!("{:<7} no humanize model: {error}", part.name()),
        }
    }

    // Song mode: the song priors write a song (DDIM), then the 2-bar models
    // decode its 32 slots for every part.
    let song_knobs = KnobSnapshot {
        phrase: PhraseLength::Song,
        ..KnobSnapshot::default()
    };
    let progression = song_knobs.harmony.progression();
    let (mut written, mut decoded, mut rerolled) = (Vec::new(), Vec::new(), Vec::new());
    // Re-roll bars 17-48 around the rest, as the window's Re-roll does.
    let mut locked = [true; latent_trio::pattern::SONG_SLOTS];
    locked[8..24].fill(false);
    let mut song_phrase = Box::<Phrase>::default();
    for run in 0..RUNS / 10 {
        let seed = 1000 + run as u32;
        let started = Instant::now();
        let song = engine
            .write_song(seed, &progression, None)
            .expect("the song priors write");
        written.push(started.elapsed());
        let started = Instant::now();
        engine
            .write_song(seed, &progression, Some((&song, &locked)))
            .expect("the song priors re-roll");
        rerolled.push(started.elapsed());
        let stored = StoredLatents {
            song: Some(song),
            ..StoredLatents::default()
        };
        let started = Instant::now();
        engine
            .decode(
                &KnobSnapshot { seed, ..song_knobs },
                &stored,
                &mut song_phrase,
                None,
            )
            .result()
            .expect("the song decodes");
        decoded.push(started.elapsed());
    }
    let priors = engine.song_priors.iter().flatten().count();
    let steps: usize = engine
        .song_priors
        .iter()
        .flatten()
        .map(|prior| prior.manifest.sampler.steps)
        .sum();
    let written_ms =
        written.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e3 / written.len() as f64;
    println!(
        "song: {priors} song prior(s), {steps} denoiser steps in all ({:.3} ms a step): {}",
        written_ms / steps.max(1) as f64,
        summary(written)
    );
    println!(
        "song: re-rolling bars 17-48 around the rest: {}",
        summary(rerolled)
    );
    println!(
        "song: decoding its 64 bars, three parts: {}",
        summary(decoded)
    );

    // Context transfer: the melody's Transformer VAE plays a phrase that
    // follows a clip's structure (its latent stands in for one here).
    match &engine.structure_model {
        Ok(model) => {
            let structure = FollowedStructure {
                name: "bench".into(),
                summary: String::new(),
                latent: model.latent(7, &Default::default(), None),
                bar_sources: Vec::new(),
            };
            let stored = StoredLatents {
                structure: Some(structure),
                ..StoredLatents::default()
            };
            for bars in [8, 16] {
                let knobs = KnobSnapshot {
                    phrase: PhraseLength::Bars(bars),
                    ..KnobSnapshot::default()
                };
                let inputs = engine
                    .part_inputs(Part::Melody, &knobs, &stored)
                    .expect("the melody has a model");
                assert!(inputs.follows_structure());
                let model = engine.structure_model.as_mut().expect("loaded");
                let times = (0..RUNS / 4)
                    .map(|_| {
                        let started = Instant::now();
                        model
                            .decode_tokens(&inputs, &[], bars)
                            .expect("the Transformer VAE decodes");
                        started.elapsed()
                    })
                    .collect();
                println!(
                    "structure: a {bars}-bar melody phrase from the Transformer VAE: {}",
                    summary(times)
                );
            }
        }
        Err(error) => println!("no Transformer VAE: {error}"),
    }

    // The engine alone (no worker, no bridge): a knob of every part moves
    // while 16-bar phrases play; the bar at the change point first, then
    // the rest.
    let (mut next_bar, mut rest) = (Vec::new(), Vec::new());
    let mut phrase = Box::<Phrase>::default();
    let mut knobs = KnobSnapshot {
        phrase: PhraseLength::Bars(16),
        ..KnobSnapshot::default()
    };
    engine.decode(&knobs, &stored, &mut phrase, None);
    for run in 0..RUNS {
        for part in &mut knobs.parts {
            part.principal[0] = run as f32 * 0.01 - 1.0;
        }
        let change_bar = 1 + (run % 14) as i64;
        let started = Instant::now();
        engine.decode_first_bars(&knobs, &stored, &mut phrase, change_bar, 1);
        next_bar.push(started.elapsed());
        let started = Instant::now();
        engine.decode(&knobs, &stored, &mut phrase, Some(change_bar));
        rest.push(started.elapsed());
    }
    println!(
        "engine alone, knob move on 16-bar phrases: the next bar of all three parts {}",
        summary(next_bar)
    );
    println!(
        "                                           the rest of their phrases {}",
        summary(rest)
    );

    let (audio, worker_side) = bridge();
    let status = Arc::new(EngineStatus::default());
    let handle = worker::spawn(
        worker_side,
        WorkerSettings {
            models: Some(models),
            provider_choice: Box::new(|| ProviderChoice::Cpu),
            status,
            stored: Arc::default(),
            commands: crossbeam_channel::never(),
        },
    )
    .unwrap();
    let mut id = 0;
    for (phrase_length, name) in [
        (PhraseLength::Progression, "the default 4-bar progression"),
        (
            PhraseLength::Bars(16),
            "16-bar phrases, heard from their start",
        ),
    ] {
        let mut times = Vec::new();
        for run in 0..=(RUNS / 4) {
            // A knob of every part moves, so all three decode; an offline
            // request is decoded at once (a real-time one waits for its bar
            // line). The transport is stopped, so the whole phrase is new.
            let mut knobs = KnobSnapshot {
                phrase: phrase_length,
                ..KnobSnapshot::default()
            };
            for part in &mut knobs.parts {
                part.principal[0] = run as f32 * 0.02 - 1.0;
            }
            id += 1;
            let started = Instant::now();
            assert!(audio.request(DecodeRequest {
                id,
                knobs,
                offline: true
            }));
            let phrase = audio
                .receive_within(Duration::from_secs(60))
                .expect("a phrase");
            // The first request also loads the models: leave it out.
            if run > 0 {
                times.push(started.elapsed());
            }
            assert!(audio.give_back(phrase).is_ok());
        }
        println!(
            "knob move -> all three parts ready, {name} (worker thread + bridge): {}",
            summary(times)
        );
    }

    // While playing 16-bar phrases: a knob of every part moves just before
    // a bar line. The final decode writes the bar heard there; the rest of
    // the phrase follows at once, as a phrase of its own.
    let (mut next_bar, mut whole) = (Vec::new(), Vec::new());
    for run in 0..=(RUNS / 4) {
        let mut knobs = KnobSnapshot {
            phrase: PhraseLength::Bars(16),
            ..KnobSnapshot::default()
        };
        for part in &mut knobs.parts {
            part.principal[0] = 1.0 - run as f32 * 0.02;
        }
        id += 1;
        // The bar line sounds now; bars of 50 ms make each run's bar line a
        // new change point (the worker decodes once per change point).
        // The knob moves in phrase bars 1-15 in turn (from bar 16 on there
        // is no rest to decode).
        let change_bar = 1 + (run % 15) as i64;
        std::thread::sleep(Duration::from_millis(30));
        audio
            .clock
            .publish(Instant::now(), Some(0.0), change_bar, 0.005, 0.05);
        let started = Instant::now();
        assert!(audio.request(DecodeRequest {
            id,
            knobs,
            offline: false
        }));
        let first = audio
            .receive_within(Duration::from_secs(60))
            .expect("the bar heard first");
        let first_ready = started.elapsed();
        assert!(!first.completes_previous && first.request_id == id);
        let rest_ready = if change_bar < 15 {
            let rest = audio
                .receive_within(Duration::from_secs(60))
                .expect("the rest of the phrase");
            assert!(rest.completes_previous && rest.request_id == id);
            assert!(audio.give_back(rest).is_ok());
            started.elapsed()
        } else {
            first_ready
        };
        if run > 0 {
            next_bar.push(first_ready);
            whole.push(rest_ready);
        }
        assert!(audio.give_back(first).is_ok());
    }
    println!(
        "knob move while playing 16-bar phrases -> the next bar of all three parts ready: {}",
        summary(next_bar)
    );
    println!(
        "                                        -> the rest of their phrases ready: {}",
        summary(whole)
    );
    drop(audio);
    handle.join().unwrap();
}
