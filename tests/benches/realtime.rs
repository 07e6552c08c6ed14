//! What riding the knobs costs: the worker thread's CPU while the host plays
//! in real time (sleeping between blocks like an audio callback) and every
//! latent knob sweeps, and how many decodes that takes per part per bar.
//!
//! One line per scenario, median and spread of 3 runs:
//! `worker cpu: <median> % of a core, <n> decodes per part per bar`.
//!
//! Run: `cargo bench -p latent_trio_host --bench realtime` (after
//! `cargo xtask bundle latent_trio --release`; LATENT_TRIO_BENCH_BUNDLE picks
//! another build, LATENT_TRIO_BENCH_SECONDS the length of each run, 12 s).

use std::path::PathBuf;
use std::time::Instant;

use latent_trio_host::{Bundle, DecodeCount, Instance, Part, worker_cpu_time};

const RUNS: usize = 3;
const SAMPLE_RATE: f64 = 48_000.0;
/// Change setting values: the plain value of the "Change" parameter.
const NEXT_BAR: f64 = 0.0;
const EVERY_4_BARS: f64 = 2.0;

struct Scenario {
    tempo: f64,
    block: u32,
    change: f64,
    sweeping: bool,
}

struct Run {
    cpu_percent: f64,
    decodes_per_part_per_bar: f64,
    finals_per_bar: f64,
    previews_per_bar: f64,
}

/// Every knob that moves the latent: 8 principal and 2-3 attribute knobs a
/// part, 32 in all (drums have no register).
fn latent_knobs(instance: &Instance) -> Vec<(String, f64, f64)> {
    instance
        .params
        .iter()
        .filter(|p| {
            ["Latent", "Density", "Syncopation", "Register"]
                .iter()
                .any(|word| p.name.contains(word))
                && p.name != "Drums Register"
        })
        .map(|p| (p.name.clone(), p.min, p.max))
        .collect()
}

fn run_once(bundle: &Bundle, scenario: &Scenario, seconds: f64) -> Run {
    let mut instance = bundle.instantiate().expect("instantiates");
    instance.activate(SAMPLE_RATE, scenario.block.max(512));
    assert!(instance.warm_up(120.0), "the models load");
    instance.set("Change", scenario.change);
    instance.song.tempo = scenario.tempo;
    let knobs = latent_knobs(&instance);
    assert_eq!(knobs.len(), 32, "32 latent knobs");
    let counts = |bundle: &Bundle| {
        [
            DecodeCount::PartRuns(Part::Drums),
            DecodeCount::PartRuns(Part::Bass),
            DecodeCount::PartRuns(Part::Melody),
            DecodeCount::Final,
            DecodeCount::Preview,
        ]
        .map(|which| bundle.decode_count(which))
    };
    let before = counts(bundle);
    let cpu_before = worker_cpu_time().expect("the worker thread runs");
    let started = Instant::now();
    let samples = (seconds * SAMPLE_RATE) as u64;
    let sweeping = scenario.sweeping;
    instance.play_realtime(samples, scenario.block, |instance, t| {
        if !sweeping {
            return;
        }
        // Slow sines of 10-41 s, one per knob, as a performer's hands.
        for (index, (name, min, max)) in knobs.iter().enumerate() {
            let period = 10.0 + index as f64;
            let phase = (t / period * std::f64::consts::TAU).sin();
            instance.set(name, min + (max - min) * (0.5 + 0.45 * phase));
        }
    });
    let wall = started.elapsed();
    let cpu = worker_cpu_time().expect("the worker thread runs") - cpu_before;
    let after = counts(bundle);
    let delta: Vec<f64> = after
        .iter()
        .zip(before)
        .map(|(a, b)| (a - b) as f64)
        .collect();
    let bars = seconds * scenario.tempo / 60.0 / 4.0;
    Run {
        cpu_percent: cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
        decodes_per_part_per_bar: (delta[0] + delta[1] + delta[2]) / 3.0 / bars,
        finals_per_bar: delta[3] / bars,
        previews_per_bar: delta[4] / bars,
    }
}

fn median_and_spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

fn main() {
    let path = std::env::var_os("LATENT_TRIO_BENCH_BUNDLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| latent_trio_host::workspace().join("target/bundled/Latent Trio.clap"));
    let seconds: f64 = std::env::var("LATENT_TRIO_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12.0);
    println!("bundle: {}", path.display());
    println!("{RUNS} runs of {seconds} s each, 48 kHz, all 32 latent knobs sweeping unless idle");
    let bundle = Bundle::load(&path).expect("bundle loads");
    let mut scenarios = Vec::new();
    for tempo in [120.0, 300.0] {
        for block in [128, 512] {
            for change in [NEXT_BAR, EVERY_4_BARS] {
                scenarios.push(Scenario {
                    tempo,
                    block,
                    change,
                    sweeping: true,
                });
            }
        }
    }
    scenarios.push(Scenario {
        tempo: 120.0,
        block: 512,
        change: NEXT_BAR,
        sweeping: false,
    });
    let started = Instant::now();
    for scenario in &scenarios {
        let runs: Vec<Run> = (0..RUNS)
            .map(|_| run_once(&bundle, scenario, seconds))
            .collect();
        let (cpu, cpu_low, cpu_high) =
            median_and_spread(runs.iter().map(|r| r.cpu_percent).collect());
        let (decodes, low, high) =
            median_and_spread(runs.iter().map(|r| r.decodes_per_part_per_bar).collect());
        let (finals, _, _) = median_and_spread(runs.iter().map(|r| r.finals_per_bar).collect());
        let (previews, _, _) = median_and_spread(runs.iter().map(|r| r.previews_per_bar).collect());
        println!(
            "{:>3} BPM, {:>3}-sample blocks, change {:<12} {:<8} worker cpu: {cpu:.2} % of a core ({cpu_low:.2}-{cpu_high:.2}), {decodes:.2} decodes per part per bar ({low:.2}-{high:.2}); {finals:.2} final and {previews:.2} preview decodes per bar",
            scenario.tempo,
            scenario.block,
            if scenario.change == NEXT_BAR {
                "next bar,"
            } else {
                "every 4 bars,"
            },
            if scenario.sweeping {
                "sweeping"
            } else {
                "idle"
            },
        );
    }
    println!("total {:.0} s", started.elapsed().as_secs_f64());
}
