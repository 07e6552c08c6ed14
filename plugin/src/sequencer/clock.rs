//! Transport -> 16th-note grid arithmetic. Pure functions of the host's
//! numbers, so that the plugin and the headless host agree to the sample.
//!
//! Positions are in quarter notes (the host's "beats"); a step is a 16th
//! note, a quarter of a quarter. Step `n` of the song lies at `n / 4`
//! quarters. Its note starts on the first sample at or after that instant:
//! `ceil((n / 4 - block_start) * samples_per_quarter)` inside the block.

/// 16th steps per quarter note.
pub const STEPS_PER_QUARTER: f64 = 4.0;
/// How far (in samples) a step may lie past a sample boundary and still count
/// as on it. Hosts pass positions in fixed point (CLAP: 2^-31 of a beat, about
/// 5e-5 samples at 60 BPM and 96 kHz), so a step exactly on a sample can
/// arrive a hair after it.
const SAMPLE_TOLERANCE: f64 = 1e-3;

/// A time signature, sanitised: numerator 1..=32, denominator a power of two
/// from 1 to 16 (a 32nd-note denominator would put bar lines between 16ths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meter {
    /// Beats per bar.
    pub numerator: u32,
    /// Beat unit.
    pub denominator: u32,
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            numerator: 4,
            denominator: 4,
        }
    }
}

impl Meter {
    /// The host's signature, or 4/4 where it gives none or nonsense.
    pub fn from_host(numerator: Option<i32>, denominator: Option<i32>) -> Meter {
        let numerator = numerator.filter(|n| (1..=32).contains(n));
        let denominator =
            denominator.filter(|d| (1..=64).contains(d) && (*d as u32).is_power_of_two());
        match (numerator, denominator) {
            (Some(n), Some(d)) => Meter {
                numerator: n as u32,
                denominator: (d as u32).min(16),
            },
            _ => Meter::default(),
        }
    }

    /// 16th steps in one bar: 16 in 4/4, 12 in 3/4, 14 in 7/8.
    pub fn steps_per_bar(self) -> i64 {
        i64::from(self.numerator * 16 / self.denominator)
    }

    /// Length of a bar in quarter notes.
    pub fn bar_quarters(self) -> f64 {
        self.steps_per_bar() as f64 / STEPS_PER_QUARTER
    }
}

/// Samples per quarter note at `tempo` BPM.
pub fn samples_per_quarter(sample_rate: f64, tempo: f64) -> f64 {
    sample_rate * 60.0 / tempo
}

/// Where one block of audio lies on the grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockTiming {
    /// Song position of the block's first sample, in quarters.
    pub start_quarters: f64,
    /// Samples per quarter note during the block.
    pub samples_per_quarter: f64,
    /// Samples in the block.
    pub samples: u32,
}

impl BlockTiming {
    /// Song position just after the block's last sample.
    pub fn end_quarters(&self) -> f64 {
        self.start_quarters + f64::from(self.samples) / self.samples_per_quarter
    }

    /// Sample offset of step `step` relative to the block start (negative for
    /// steps before the block), rounded up to the first sample at or after it.
    pub fn step_offset(&self, step: i64) -> i64 {
        self.time_offset(step as f64)
    }

    /// Sample (relative to the block start) on which song time `at`, in
    /// 16ths (off the grid too), sounds: the first sample at or after it.
    pub fn time_offset(&self, at: f64) -> i64 {
        let exact = (at / STEPS_PER_QUARTER - self.start_quarters) * self.samples_per_quarter;
        (exact - SAMPLE_TOLERANCE).ceil() as i64
    }

    /// The first step whose sample is in or after this block.
    pub fn first_step(&self) -> i64 {
        let mut step = (self.start_quarters * STEPS_PER_QUARTER).floor() as i64 - 1;
        while self.step_offset(step) < 0 {
            step += 1;
        }
        step
    }

    /// Whether step `step` starts inside this block.
    pub fn contains_step(&self, step: i64) -> bool {
        (0..i64::from(self.samples)).contains(&self.step_offset(step))
    }
}

/// How far (in quarters) a host's bar start may lie from where the position
/// says: hosts round positions (Ardour to 1/1920 beat).
const BAR_TOLERANCE_QUARTERS: f64 = 1e-3;

/// Where the bar holding a song position starts, and its number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BarGrid {
    /// Start of the bar, in quarters.
    pub start: f64,
    /// Its number, 0 = the bar that starts at the song start.
    pub number: i64,
    /// Whether the host's bar start was used.
    pub from_host: bool,
}

impl BarGrid {
    /// The bar that holds `position`. A host's bar start is used only when
    /// the position lies inside the bar it names, so that it can carry the
    /// grid across meter changes; otherwise (Ardour 7's bar start one bar
    /// late, bar fields left at 0) the grid is counted from the song start in
    /// the current meter. Either way the bar's number is its start divided by
    /// the bar length: a host's bar number never moves the grid.
    pub fn at(position: f64, host_bar_start: Option<f64>, meter: Meter) -> BarGrid {
        let bar = meter.bar_quarters();
        let host = host_bar_start.filter(|start| {
            start.is_finite()
                && *start <= position + BAR_TOLERANCE_QUARTERS
                && position < start + bar - BAR_TOLERANCE_QUARTERS
        });
        match host {
            Some(start) => BarGrid {
                start,
                number: (start / bar).round() as i64,
                from_host: true,
            },
            None => {
                let number = ((position + BAR_TOLERANCE_QUARTERS) / bar).floor();
                BarGrid {
                    start: number * bar,
                    number: number as i64,
                    from_host: false,
                }
            }
        }
    }
}

/// Which bar a step is in, and where in that bar, given the start (in steps)
/// and number of a bar the host reported and the meter since then.
pub fn bar_position(step: i64, bar_start_step: i64, bar_number: i64, meter: Meter) -> (i64, i64) {
    let steps_per_bar = meter.steps_per_bar();
    let into = step - bar_start_step;
    (
        bar_number + into.div_euclid(steps_per_bar),
        into.rem_euclid(steps_per_bar),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ardours_bar_start_one_bar_late_is_not_believed() {
        let four = Meter::default();
        // Ardour 7 at the song start: bar start 4.0 (bar 1 counted from 1).
        let grid = BarGrid::at(0.0, Some(4.0), four);
        assert_eq!((grid.start, grid.number, grid.from_host), (0.0, 0, false));
        // In 3/4 it still counts 4 quarters a bar: bar 2 starts at 6.
        let three = Meter::from_host(Some(3), Some(4));
        let grid = BarGrid::at(7.0, Some(12.0), three);
        assert_eq!((grid.start, grid.number), (6.0, 2));
    }

    #[test]
    fn a_truthful_bar_start_carries_the_grid_across_a_meter_change() {
        // Eight bars of 4/4, then 3/4: bars start at 32, 35, 38...
        let three = Meter::from_host(Some(3), Some(4));
        let grid = BarGrid::at(36.0, Some(35.0), three);
        assert!(grid.from_host);
        assert_eq!(grid.start, 35.0);
    }

    #[test]
    fn positions_rounded_by_the_host_keep_their_bar() {
        let four = Meter::default();
        let just_before_bar_2 = 8.0 - 1.0 / 3840.0;
        assert_eq!(BarGrid::at(just_before_bar_2, None, four).number, 2);
        assert_eq!(BarGrid::at(-4.0, None, four).number, -1, "pre-roll");
    }

    /// Every step's sample in a run of contiguous blocks, as absolute samples.
    fn step_samples(sample_rate: f64, tempo: f64, block: u32, blocks: u32) -> Vec<(i64, i64)> {
        let spq = samples_per_quarter(sample_rate, tempo);
        let mut found = Vec::new();
        for b in 0..blocks {
            let start_sample = i64::from(b * block);
            let timing = BlockTiming {
                start_quarters: start_sample as f64 / spq,
                samples_per_quarter: spq,
                samples: block,
            };
            let mut step = timing.first_step();
            while timing.contains_step(step) {
                found.push((step, start_sample + timing.step_offset(step)));
                step += 1;
            }
        }
        found
    }

    #[test]
    fn every_step_lands_once_on_the_sample_the_tempo_implies() {
        for sample_rate in [44_100.0, 48_000.0, 96_000.0] {
            for tempo in [60.0, 120.0, 187.5, 93.7] {
                for block in [1, 64, 511, 512, 4096] {
                    let blocks = (sample_rate as u32 * 4) / block; // four seconds
                    let found = step_samples(sample_rate, tempo, block, blocks);
                    let spq = samples_per_quarter(sample_rate, tempo);
                    for (index, &(step, sample)) in found.iter().enumerate() {
                        assert_eq!(step, index as i64, "steps are consecutive, none twice");
                        let exact = step as f64 / 4.0 * spq;
                        assert!(
                            sample as f64 >= exact - 1e-3 && (sample as f64) < exact + 1.0,
                            "step {step} at sample {sample}, expected ceil({exact}) ({sample_rate} Hz, {tempo} BPM, block {block})"
                        );
                    }
                    let total = f64::from(blocks * block);
                    assert_eq!(
                        found.len() as f64,
                        (total / spq * 4.0).ceil(),
                        "no step is lost"
                    );
                }
            }
        }
    }

    #[test]
    fn at_120_bpm_and_48_khz_a_16th_is_6000_samples() {
        let found = step_samples(48_000.0, 120.0, 512, 100);
        assert_eq!(&found[..4], &[(0, 0), (1, 6000), (2, 12_000), (3, 18_000)]);
    }

    #[test]
    fn bars_have_as_many_steps_as_their_signature_says() {
        let steps = |n, d| Meter::from_host(Some(n), Some(d)).steps_per_bar();
        assert_eq!(steps(4, 4), 16);
        assert_eq!(steps(3, 4), 12);
        assert_eq!(steps(7, 8), 14);
        assert_eq!(steps(6, 8), 12);
        assert_eq!(steps(5, 4), 20);
        assert_eq!(Meter::from_host(None, Some(4)), Meter::default());
        assert_eq!(Meter::from_host(Some(0), Some(3)), Meter::default());
    }

    #[test]
    fn bar_lines_are_found_across_bar_boundaries_and_before_the_song_start() {
        let four = Meter::default();
        assert_eq!(bar_position(0, 0, 0, four), (0, 0));
        assert_eq!(bar_position(15, 0, 0, four), (0, 15));
        assert_eq!(bar_position(16, 0, 0, four), (1, 0));
        assert_eq!(bar_position(-1, 0, 0, four), (-1, 15));
        let seven_eight = Meter::from_host(Some(7), Some(8));
        // After four bars of 4/4 (step 64, bar 4) the song turns to 7/8.
        assert_eq!(bar_position(64 + 14, 64, 4, seven_eight), (5, 0));
        assert_eq!(bar_position(64 + 13, 64, 4, seven_eight), (4, 13));
    }

    #[test]
    fn a_block_starting_exactly_on_a_step_plays_it_at_sample_zero() {
        let timing = BlockTiming {
            start_quarters: 2.0,
            samples_per_quarter: 22_050.0,
            samples: 64,
        };
        assert_eq!(timing.first_step(), 8);
        assert_eq!(timing.step_offset(8), 0);
        // A host's fixed-point position just past the step still counts as on it.
        let noisy = BlockTiming {
            start_quarters: 2.0 + 2f64.powi(-31),
            ..timing
        };
        assert_eq!(noisy.first_step(), 8);
        assert_eq!(noisy.step_offset(8), 0);
    }
}
