//! What the plugin costs a host: `process()` time per block with all three
//! parts playing, instantiation time as a plugin scan sees it, and resident
//! memory of one and four instances.
//!
//! Run: `cargo bench -p latent_trio_host --bench host` (after
//! `cargo xtask bundle latent_trio --release`; set LATENT_TRIO_BENCH_BUNDLE to
//! measure another build).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use latent_trio_host::{Bundle, Instance};

fn bundle_path() -> PathBuf {
    std::env::var_os("LATENT_TRIO_BENCH_BUNDLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| latent_trio_host::workspace().join("target/bundled/Latent Trio.clap"))
}

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ready(bundle: &Bundle) -> Instance {
    let mut instance = bundle.instantiate().expect("instantiates");
    instance.activate(48_000.0, 4096);
    assert!(instance.warm_up(120.0), "the models load");
    instance
}

fn main() {
    let path = bundle_path();
    println!("bundle: {}", path.display());
    let memory_before = resident_kib();
    let bundle = Bundle::load(&path).expect("bundle loads");

    // A host scan: instantiate and destroy, no activation.
    let mut scans: Vec<Duration> = (0..20)
        .map(|_| {
            let started = Instant::now();
            drop(bundle.instantiate().unwrap());
            started.elapsed()
        })
        .collect();
    scans.sort();
    println!(
        "instantiate (host scan, no model load): median {:.0} us, max {:.0} us over {} runs",
        micros(percentile(&scans, 0.5)),
        micros(*scans.last().unwrap()),
        scans.len()
    );

    let started = Instant::now();
    let mut instance = ready(&bundle);
    println!(
        "first activation to first note (model load + first decode, real time): {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let one = resident_kib();

    println!("process() at 48 kHz, 120 BPM, all three parts playing, 64 bars per block size:");
    println!("| block | blocks | median | p99.9 | max | note events | per event (mean) |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for block in [64u32, 512, 4096] {
        instance.song = Default::default();
        let total = 64 * 96_000u64;
        let mut times = Vec::new();
        let from = instance.events.len();
        let mut done = 0;
        while done < total {
            let frames = (total - done).min(u64::from(block)) as u32;
            instance.block(frames);
            times.push(instance.last_process);
            done += u64::from(frames);
        }
        let events = instance.events.len() - from;
        let sum: Duration = times.iter().sum();
        times.sort();
        println!(
            "| {block} | {} | {:.2} us | {:.2} us | {:.1} us | {events} | {:.3} us |",
            times.len(),
            micros(percentile(&times, 0.5)),
            micros(percentile(&times, 0.999)),
            micros(*times.last().unwrap()),
            micros(sum) / events.max(1) as f64
        );
    }

    let others: Vec<Instance> = (0..3).map(|_| ready(&bundle)).collect();
    let four = resident_kib();
    println!(
        "resident memory: host before loading {} MiB, one playing instance {} MiB, four {} MiB",
        memory_before / 1024,
        one / 1024,
        four / 1024
    );
    drop(others);
}
