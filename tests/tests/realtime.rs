//! Riding the knobs in real time: the host sleeps between blocks as an audio
//! callback does, and the worker decodes a part only when its own knobs moved,
//! once, just before the bar line where the change is heard.
//!
//! The decode counters are process-wide and the timing is real, so these
//! scenarios run one at a time.

use std::sync::Mutex;

use latent_trio_host::{
    Bundle, DecodeCount, Instance, Part, check_balanced, clap_bundle, switched_at,
};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const RATE: f64 = 48_000.0;

fn samples_per_bar(tempo: f64) -> u64 {
    (4.0 * 60.0 / tempo * RATE).round() as u64
}

fn realtime(bundle: &Bundle, tempo: f64) -> Instance {
    let mut instance = bundle.instantiate().expect("instantiates");
    instance.activate(RATE, 512);
    assert!(instance.warm_up(60.0), "the models load and play");
    instance.song.tempo = tempo;
    instance
}

fn offline(bundle: &Bundle, tempo: f64) -> Instance {
    let mut instance = bundle.instantiate_offline(512).expect("instantiates");
    instance.song.tempo = tempo;
    instance
}

/// Note-ons since event `from`, as (sample since `wall`, channel, key).
fn onsets(instance: &Instance, from: usize, wall: u64) -> Vec<(u64, u16, u16)> {
    instance
        .events_since(from)
        .iter()
        .filter(|e| e.on)
        .map(|e| (e.sample - wall, e.channel, e.key))
        .collect()
}

/// Knob moves: (sample, knob, value).
type Moves = [(u64, &'static str, f64)];

/// Plays `samples` from the song start with `moves` applied at their samples,
/// in real time or as an offline bounce; returns the note-ons.
fn play_with_moves(
    instance: &mut Instance,
    samples: u64,
    moves: &Moves,
    real_time: bool,
) -> Vec<(u64, u16, u16)> {
    let (from, wall) = (instance.events.len(), instance.wall);
    let mut next = 0;
    if real_time {
        instance.play_realtime(samples, 512, |instance, seconds| {
            let now = (seconds * RATE).round() as u64;
            while next < moves.len() && moves[next].0 <= now {
                instance.set(moves[next].1, moves[next].2);
                next += 1;
            }
        });
    } else {
        let mut played = 0;
        while played < samples {
            while next < moves.len() && moves[next].0 <= played {
                instance.set(moves[next].1, moves[next].2);
                next += 1;
            }
            let frames = (samples - played).min(512) as u32;
            instance.block(frames);
            played += u64::from(frames);
        }
    }
    instance.song.playing = false;
    instance.block(64);
    check_balanced(instance.events_since(from)).expect("no stuck notes");
    onsets(instance, from, wall)
}

fn part_runs(bundle: &Bundle) -> [u64; 3] {
    [Part::Drums, Part::Bass, Part::Melody]
        .map(|part| bundle.decode_count(DecodeCount::PartRuns(part)))
}

#[test]
fn sweeping_one_parts_knobs_decodes_only_that_part() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = realtime(&bundle, 240.0);
    let before = part_runs(&bundle);
    let bars = 3;
    instance.play_realtime(bars * samples_per_bar(240.0), 512, |instance, seconds| {
        for knob in 1..=8 {
            let value = 2.5 * (seconds * 0.7 + f64::from(knob)).sin();
            instance.set(&format!("Bass Latent {knob}"), value);
        }
    });
    let after = part_runs(&bundle);
    assert_eq!(after[0], before[0], "drums were not decoded");
    assert_eq!(after[2], before[2], "melody was not decoded");
    let bass = after[1] - before[1];
    assert!(
        (2..=bars + 2).contains(&bass),
        "bass decoded {bass} times in {bars} bars of sweeping"
    );
}

#[test]
fn with_change_every_4_bars_no_final_decode_happens_before_the_change_point() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = realtime(&bundle, 240.0);
    instance.set("Change", 2.0);
    let bar = samples_per_bar(240.0);
    let finals = || bundle.decode_count(DecodeCount::Final);
    let before = finals();
    let sweep = |instance: &mut Instance, seconds: f64| {
        instance.set("Drums Latent 1", 2.5 * (seconds * 2.0).sin());
        instance.set("Melody Density", 1.5 * (seconds * 1.3).cos());
    };
    instance.play_realtime(bar * 7 / 2, 512, sweep);
    assert_eq!(finals(), before, "no final decode in bars 1-3");
    instance.play_realtime(bar, 512, sweep);
    assert_eq!(
        finals(),
        before + 1,
        "one final decode for the bar-4 change"
    );
}

/// Knobs of all three parts.
const KNOBS: [(&str, f64); 3] = [
    ("Drums Latent 1", 2.5),
    ("Bass Latent 1", -2.5),
    ("Melody Density", 1.5),
];

#[test]
fn a_knob_moved_a_quarter_second_before_a_bar_line_is_heard_on_that_bar_line() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let bar = samples_per_bar(120.0);
    let at = 2 * bar - (0.25 * RATE) as u64;
    let moves: Vec<_> = KNOBS
        .iter()
        .map(|&(knob, value)| (at, knob, value))
        .collect();
    let heard = play_with_moves(&mut realtime(&bundle, 120.0), 4 * bar, &moves, true);
    let before = play_with_moves(&mut offline(&bundle, 120.0), 4 * bar, &[], false);
    let from_start: Vec<_> = KNOBS
        .iter()
        .map(|&(knob, value)| (0, knob, value))
        .collect();
    let after = play_with_moves(&mut offline(&bundle, 120.0), 4 * bar, &from_start, false);
    let line = 2 * bar;
    let expected = switched_at(&before, &after, line);
    assert_ne!(before, after, "the knobs change the music");
    assert_eq!(heard, expected, "the move is heard from bar 2 on");
}

#[test]
fn a_real_time_run_with_sweeps_plays_the_notes_of_an_offline_bounce() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let bar = samples_per_bar(240.0);
    // Every knob of a part moves in each bar, in steps a quarter-bar apart,
    // all well before the bar line.
    let mut moves = Vec::new();
    for b in 0..5u64 {
        for (i, knob) in [
            "Drums Latent 2",
            "Bass Latent 3",
            "Melody Latent 1",
            "Melody Syncopation",
        ]
        .into_iter()
        .enumerate()
        {
            let value = ((b * 4 + i as u64) as f64 * 0.9).sin() * 2.0;
            moves.push((b * bar + (i as u64 + 1) * bar / 6, knob, value));
        }
    }
    moves.sort_by_key(|m| m.0);
    let heard = play_with_moves(&mut realtime(&bundle, 240.0), 6 * bar, &moves, true);
    let bounced = play_with_moves(&mut offline(&bundle, 240.0), 6 * bar, &moves, false);
    assert!(heard.len() > 20, "{} notes", heard.len());
    assert_eq!(heard, bounced);
}

#[test]
fn riding_knobs_on_16_bar_phrases_in_real_time_plays_the_notes_of_an_offline_bounce() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let bar = samples_per_bar(240.0);
    // Change every 4 bars; knobs of every part move in bars 2, 6 and 7
    // (normalized values): heard from bars 5 and 9, where only the first
    // bar is decoded before the bar line and the rest must take over
    // mid-phrase. The bars before each change point stay as they were heard.
    let mut moves = Vec::new();
    for (b, value) in [(1u64, 0.9), (5, 0.2), (6, 0.7)] {
        for (i, knob) in ["Drums Latent 1", "Bass Latent 2", "Melody Latent 1"]
            .into_iter()
            .enumerate()
        {
            moves.push((b * bar + (i as u64 + 1) * bar / 5, knob, value));
        }
    }
    let sixteen_bars = |instance: &mut Instance| {
        instance.set("Phrase", 4.0);
        instance.set("Change", 2.0);
    };
    // As a musician would: the Phrase set while stopped, then play.
    let mut live = realtime(&bundle, 240.0);
    sixteen_bars(&mut live);
    live.song.playing = false;
    live.block(64);
    std::thread::sleep(std::time::Duration::from_millis(600));
    live.block(64);
    live.song.playing = true;
    let rests = || bundle.decode_count(DecodeCount::Rest);
    let rests_before = rests();
    let heard = play_with_moves(&mut live, 12 * bar, &moves, true);
    let mut bounce = offline(&bundle, 240.0);
    sixteen_bars(&mut bounce);
    let bounced = play_with_moves(&mut bounce, 12 * bar, &moves, false);
    assert_eq!(
        rests() - rests_before,
        2,
        "each move's first bar came first, the rest of its phrase after"
    );
    assert!(heard.len() > 40, "{} notes", heard.len());
    assert_eq!(heard, bounced);
}

/// Names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect()
}

#[test]
fn every_thread_says_what_it_is_and_none_outlives_the_last_instance_but_onnx_runtimes() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let before = thread_names();
    {
        let _first = realtime(&bundle, 120.0);
        let _second = realtime(&bundle, 120.0);
        let playing = thread_names();
        let workers = playing.iter().filter(|n| *n == "trio-worker").count();
        assert_eq!(workers, 2, "one worker per instance: {playing:?}");
    }
    // The plugin's threads: its own ("trio-...") and nice-plug's background
    // thread. (The test harness starts threads of its own meanwhile.)
    let plugin_threads = || -> Vec<String> {
        thread_names()
            .into_iter()
            .filter(|name| name.starts_with("trio-") || name == "bg-worker")
            .collect()
    };
    let left: Vec<_> = plugin_threads()
        .into_iter()
        .filter(|name| !before.contains(name))
        .collect();
    // ONNX Runtime's process-wide environment keeps one helper thread for
    // the life of the process; it carries its own name.
    assert!(
        left.iter().all(|name| name == "trio-onnxrt"),
        "threads left behind: {left:?}"
    );
    assert!(
        !plugin_threads().iter().any(|name| name == "trio-worker"),
        "a worker outlived its instance"
    );
}

#[test]
fn a_bounce_right_after_real_time_play_never_waits_for_an_unanswered_phrase() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = realtime(&bundle, 120.0);
    instance.play_realtime(20_000, 512, |_, _| {});
    // A knob moved and moved back before its bar line: the second request
    // asks for the phrase already playing, which the worker has no reason
    // to decode in real time.
    instance.set("Drums Latent 2", 2.0);
    instance.play_realtime(2_048, 512, |_, _| {});
    instance.set("Drums Latent 2", 0.0);
    instance.play_realtime(2_048, 512, |_, _| {});
    // The host bounces: it re-activates the instance offline.
    instance.set_offline(true).unwrap();
    instance.activate(RATE, 512);
    instance.song = Default::default();
    let started = std::time::Instant::now();
    let from = instance.events.len();
    instance.play(2 * samples_per_bar(120.0), 512);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the bounce took {:?}",
        started.elapsed()
    );
    assert!(
        instance.events_since(from).iter().any(|e| e.on),
        "the bounce plays"
    );
}

#[test]
fn playing_right_after_activation_sounds_in_the_first_bar_not_from_the_second() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = bundle.instantiate().expect("instantiates");
    instance.activate(RATE, 512);
    // No warm-up: the transport runs from the first block, while the worker
    // is still loading the models.
    let bar = samples_per_bar(120.0);
    instance.play_realtime(bar, 512, |_, _| {});
    let first_bar = instance.events.iter().filter(|e| e.on).count();
    assert!(
        first_bar > 0,
        "the first bar plays once the models are loaded"
    );
}
