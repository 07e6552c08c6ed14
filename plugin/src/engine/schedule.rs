//! WORKER THREAD ONLY: when to decode.
//!
//! A phrase is only heard from its change point on (the next bar line the
//! Change setting allows), so the worker decodes a stale part once, just
//! before that point, with the knobs of that moment: a performer sweeping
//! every knob costs one decode per part per change, not one per block. While
//! the window is open, a few bounded *previews* keep its "Next" view current.
//!
//! The final decode starts `estimate + one block + SAFETY_MARGIN` before the
//! change point: the phrase must be waiting when the host processes the block
//! that holds the bar line, which it does up to one block ahead of it, and a
//! worker woken from sleep can start a few milliseconds late. The estimate
//! is measured ([`DecodeCost`]), so slower models and faster tempos move the
//! final decode earlier on their own. A decode that still finishes late is
//! heard from the following change point; until then the previous phrase
//! plays on.

use std::time::{Duration, Instant};

use crate::bridge::ChangeTiming;

/// Slack for a sleeping worker to wake and start decoding, and for a decode
/// slowed by a busy machine (a CPU quota can freeze a process for tens of
/// milliseconds). Knob moves in the last ~0.1 s before a change point are
/// heard from the next one.
pub const SAFETY_MARGIN: Duration = Duration::from_millis(80);
/// Previews come at most this often, and at most twice a bar.
const PREVIEW_INTERVAL: Duration = Duration::from_millis(250);
/// While the transport is stopped nothing is heard until play: stale parts
/// are decoded at most this often.
const STOPPED_INTERVAL: Duration = Duration::from_millis(250);
/// A change point this far in the past means the audio thread stopped
/// publishing (the host stopped calling `process()`): treat it as stopped.
const STALE_CLOCK: Duration = Duration::from_secs(1);
/// What one part's decode is assumed to cost before any was measured.
const FIRST_ESTIMATE: Duration = Duration::from_millis(20);

/// What kind of decode to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeKind {
    /// At once: an offline bounce waits for it, or the transport is stopped.
    Immediate,
    /// For the window's "Next" view; replaced by the final decode.
    Preview,
    /// The last decode before a change point: what will be heard. For a
    /// long phrase only the bar heard first is decoded (see
    /// [`crate::engine::Engine::decode_first_bars`]).
    Final,
    /// At once after a final decode that left bars for later: the rest of
    /// its phrase.
    Rest,
}

/// What the worker should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Decode the stale parts now.
    Decode(DecodeKind),
    /// Nothing until this instant (or a new message).
    WaitUntil(Instant),
    /// Nothing until a new message.
    Idle,
}

/// The measured cost of decoding one part: the slowest of the recent
/// decodes, decaying slowly so that one hiccup does not stick forever.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeCost {
    slowest: Option<Duration>,
}

impl DecodeCost {
    /// Records one part's decode time.
    pub fn observe(&mut self, took: Duration) {
        let decayed = self
            .slowest
            .map_or(Duration::ZERO, |slowest| slowest.mul_f64(0.9));
        self.slowest = Some(decayed.max(took));
    }

    /// Expected time to decode `parts` parts, with half again for jitter.
    pub fn estimate(&self, parts: usize) -> Duration {
        self.slowest
            .unwrap_or(FIRST_ESTIMATE)
            .mul_f64(1.5)
            .saturating_mul(parts as u32)
    }
}

/// Decides, each time the worker wakes, whether to decode.
#[derive(Debug, Default)]
pub struct DecodeSchedule {
    /// The change point whose final decode has run.
    final_for: Option<Instant>,
    /// When the last preview ran.
    last_preview: Option<Instant>,
    /// When the last decode of any kind ran.
    last_decode: Option<Instant>,
}

impl DecodeSchedule {
    /// What to do at `now`, given whether any part is stale (its inputs
    /// differ from the phrase last handed to the audio thread), the change
    /// point, the estimated decode time of the stale parts and whether
    /// previews are wanted (the window is open).
    pub fn decide(
        &self,
        now: Instant,
        stale: bool,
        timing: Option<ChangeTiming>,
        estimate: Duration,
        previews: bool,
    ) -> Decision {
        if !stale {
            return Decision::Idle;
        }
        let timing = timing.filter(|t| t.next_change + STALE_CLOCK > now);
        let Some(timing) = timing else {
            return match self.last_decode {
                Some(last) if now < last + STOPPED_INTERVAL => {
                    Decision::WaitUntil(last + STOPPED_INTERVAL)
                }
                _ => Decision::Decode(DecodeKind::Immediate),
            };
        };
        let change = timing.next_change;
        let final_at = change
            .checked_sub(estimate + timing.block + SAFETY_MARGIN)
            .unwrap_or(now);
        if now >= final_at {
            if self.is_final_done(change, timing.bar) {
                // Too late for this change point: wait for the next one
                // (the audio thread publishes it once this one has passed).
                return Decision::WaitUntil(change.max(now) + timing.block + SAFETY_MARGIN);
            }
            return Decision::Decode(DecodeKind::Final);
        }
        if previews {
            let interval = PREVIEW_INTERVAL.max(timing.bar / 2);
            let next_preview = self.last_preview.map_or(now, |last| last + interval);
            if now >= next_preview {
                return Decision::Decode(DecodeKind::Preview);
            }
            return Decision::WaitUntil(next_preview.min(final_at));
        }
        Decision::WaitUntil(final_at)
    }

    /// Records that a decode of `kind` ran at `now` for the change point of
    /// `timing`.
    pub fn decoded(&mut self, kind: DecodeKind, now: Instant, timing: Option<ChangeTiming>) {
        self.last_decode = Some(now);
        match kind {
            DecodeKind::Preview => self.last_preview = Some(now),
            DecodeKind::Final => self.final_for = timing.map(|t| t.next_change),
            DecodeKind::Immediate | DecodeKind::Rest => {}
        }
    }

    /// Whether the final decode for the change point at `change` has run.
    /// The published instant wobbles by microseconds from block to block, so
    /// anything within half a bar is the same change point.
    fn is_final_done(&self, change: Instant, bar: Duration) -> bool {
        self.final_for.is_some_and(|done| {
            let apart = if done > change {
                done - change
            } else {
                change - done
            };
            apart < bar / 2
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAR: Duration = Duration::from_secs(2);
    const BLOCK: Duration = Duration::from_micros(10_667);
    const ESTIMATE: Duration = Duration::from_millis(6);

    fn timing(change: Instant) -> Option<ChangeTiming> {
        Some(ChangeTiming {
            next_change: change,
            block: BLOCK,
            bar: BAR,
            change_song_bar: 1,
        })
    }

    /// Simulates a knob sweep at 120 BPM: stale on every 10.7 ms block for
    /// `bars` bars; returns the decodes of each kind.
    fn sweep(bars: u32, every_bars: u32, previews: bool) -> (usize, usize) {
        let start = Instant::now();
        let mut schedule = DecodeSchedule::default();
        let (mut finals, mut previews_run) = (0, 0);
        let mut now = start;
        let end = start + BAR * bars;
        while now < end {
            let elapsed = now - start;
            let bars_done = (elapsed.as_secs_f64() / BAR.as_secs_f64()).floor() as u32;
            let next = (bars_done / every_bars + 1) * every_bars;
            let change = start + BAR * next;
            if let Decision::Decode(kind) =
                schedule.decide(now, true, timing(change), ESTIMATE, previews)
            {
                schedule.decoded(kind, now, timing(change));
                match kind {
                    DecodeKind::Final => finals += 1,
                    DecodeKind::Preview => previews_run += 1,
                    DecodeKind::Immediate => panic!("playing: never immediate"),
                    DecodeKind::Rest => panic!("the schedule never asks for the rest"),
                }
            }
            now += BLOCK;
        }
        (finals, previews_run)
    }

    #[test]
    fn a_sweep_with_the_window_closed_decodes_once_per_bar() {
        assert_eq!(sweep(8, 1, false), (8, 0));
    }

    #[test]
    fn with_change_every_4_bars_a_sweep_decodes_once_per_4_bars() {
        assert_eq!(sweep(8, 4, false), (2, 0));
    }

    #[test]
    fn previews_for_the_open_window_stay_at_two_per_bar() {
        let (finals, previews) = sweep(8, 1, true);
        assert_eq!(finals, 8);
        assert!(previews <= 16, "{previews} previews in 8 bars");
        assert!(previews >= 8, "the window sees the next phrase each bar");
    }

    #[test]
    fn the_final_decode_starts_one_estimate_block_and_margin_before_the_bar_line() {
        let now = Instant::now();
        let change = now + Duration::from_millis(100);
        let schedule = DecodeSchedule::default();
        let Decision::WaitUntil(at) = schedule.decide(now, true, timing(change), ESTIMATE, false)
        else {
            panic!("waits");
        };
        assert_eq!(change - at, ESTIMATE + BLOCK + SAFETY_MARGIN);
        assert_eq!(
            schedule.decide(at, true, timing(change), ESTIMATE, false),
            Decision::Decode(DecodeKind::Final)
        );
    }

    #[test]
    fn a_knob_moved_after_the_final_decode_waits_for_the_next_change_point() {
        let now = Instant::now();
        let change = now + Duration::from_millis(5);
        let mut schedule = DecodeSchedule::default();
        schedule.decoded(DecodeKind::Final, now, timing(change));
        // The published instant wobbles by a few microseconds.
        let wobbled = change + Duration::from_micros(3);
        assert!(matches!(
            schedule.decide(now, true, timing(wobbled), ESTIMATE, true),
            Decision::WaitUntil(at) if at > change
        ));
    }

    #[test]
    fn nothing_is_decoded_when_nothing_is_stale() {
        let schedule = DecodeSchedule::default();
        let now = Instant::now();
        assert_eq!(
            schedule.decide(now, false, timing(now), ESTIMATE, true),
            Decision::Idle
        );
    }

    #[test]
    fn while_stopped_stale_parts_decode_at_once_then_at_a_bounded_rate() {
        let now = Instant::now();
        let mut schedule = DecodeSchedule::default();
        assert_eq!(
            schedule.decide(now, true, None, ESTIMATE, false),
            Decision::Decode(DecodeKind::Immediate)
        );
        schedule.decoded(DecodeKind::Immediate, now, None);
        assert_eq!(
            schedule.decide(now, true, None, ESTIMATE, false),
            Decision::WaitUntil(now + STOPPED_INTERVAL)
        );
    }

    #[test]
    fn a_slower_model_moves_the_final_decode_earlier() {
        let mut cost = DecodeCost::default();
        cost.observe(Duration::from_millis(2));
        let fast = cost.estimate(3);
        cost.observe(Duration::from_millis(40));
        assert!(cost.estimate(3) > fast);
        assert_eq!(cost.estimate(3), Duration::from_millis(180));
    }
}
