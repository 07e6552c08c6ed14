//! The only place where the audio thread and the worker thread meet (and
//! where the GUI watches the audio thread: [`NowPlaying`]).
//!
//! The audio thread sends [`DecodeRequest`]s (plain `Copy` values) and receives
//! finished phrases. Phrases are boxed once, up front, by [`bridge`]; they
//! circulate between the two sides and are never freed on the audio thread:
//! a phrase the audio thread is done with goes back on the `spent` channel.
//! The audio side only ever calls `try_send` / `try_recv` (and, in offline
//! rendering only, a bounded `recv_timeout`).
//!
//! The audio thread also publishes when the next phrase change will be heard
//! ([`ChangeClock`]), so that the worker decodes once, just in time, instead of
//! on every knob movement.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use atomic_float::AtomicF32;
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use crate::harmony::Chord;
use crate::knobs::KnobSnapshot;
use crate::pattern::Phrase;

/// Phrases in circulation. The audio thread holds at most two (now playing and
/// next), one may be in flight, and the worker needs one to decode into.
pub const PHRASE_POOL: usize = 6;
/// Requests that may queue up before the audio thread retries on a later block.
const REQUEST_QUEUE: usize = 8;

/// Ask the worker for the phrase that `knobs` decode to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeRequest {
    /// Increases with every request; the answering phrase carries it back.
    pub id: u64,
    /// The settings to decode.
    pub knobs: KnobSnapshot,
    /// An offline bounce: the host waits for this phrase, so the worker
    /// decodes it at once instead of just before its change point.
    pub offline: bool,
}

/// When the next phrase change point will sound, in wall-clock time. Written
/// by the audio thread after every block (relaxed atomic stores, no system
/// call beyond reading the monotonic clock), read by the worker.
pub struct ChangeClock {
    /// The shared time origin of the nanosecond fields.
    epoch: Instant,
    /// When the next change point sounds, in ns after `epoch`; 0 while the
    /// transport is stopped (no change point is coming).
    next_change_ns: AtomicU64,
    /// Length of the last block in ns: a phrase must arrive before the block
    /// that holds its change point is processed.
    block_ns: AtomicU64,
    /// Length of one bar at the current tempo and meter, in ns.
    bar_ns: AtomicU64,
    /// The song bar (0 = the first) that starts at the next change point.
    next_change_bar: AtomicI64,
}

/// A reading of the [`ChangeClock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeTiming {
    /// When the next change point sounds.
    pub next_change: Instant,
    /// Length of the host's blocks.
    pub block: Duration,
    /// Length of one bar.
    pub bar: Duration,
    /// The song bar that starts at the change point: the phrase taking
    /// over there is heard from its bar `change_song_bar mod bars` on.
    pub change_song_bar: i64,
}

impl ChangeClock {
    fn new() -> Self {
        ChangeClock {
            epoch: Instant::now(),
            next_change_ns: AtomicU64::new(0),
            block_ns: AtomicU64::new(0),
            bar_ns: AtomicU64::new(0),
            next_change_bar: AtomicI64::new(0),
        }
    }

    /// Audio thread, once per block: the next change point, the start of
    /// song bar `change_bar`, sounds `seconds_to_change` after the start of
    /// the block that began at `block_started` (`None`: stopped, none is
    /// coming).
    pub fn publish(
        &self,
        block_started: Instant,
        seconds_to_change: Option<f64>,
        change_bar: i64,
        block_seconds: f64,
        bar_seconds: f64,
    ) {
        let nanos = |seconds: f64| (seconds.clamp(0.0, 1e6) * 1e9) as u64;
        let since_epoch = block_started.saturating_duration_since(self.epoch);
        let change = seconds_to_change.map_or(0, |seconds| {
            (since_epoch.as_nanos() as u64)
                .saturating_add(nanos(seconds))
                .max(1)
        });
        self.next_change_ns.store(change, Ordering::Relaxed);
        self.block_ns.store(nanos(block_seconds), Ordering::Relaxed);
        self.bar_ns.store(nanos(bar_seconds), Ordering::Relaxed);
        self.next_change_bar.store(change_bar, Ordering::Relaxed);
    }

    /// Worker: the next change point, if the transport is running.
    pub fn read(&self) -> Option<ChangeTiming> {
        let change = self.next_change_ns.load(Ordering::Relaxed);
        (change != 0).then(|| ChangeTiming {
            next_change: self.epoch + Duration::from_nanos(change),
            block: Duration::from_nanos(self.block_ns.load(Ordering::Relaxed)),
            bar: Duration::from_nanos(self.bar_ns.load(Ordering::Relaxed)),
            change_song_bar: self.next_change_bar.load(Ordering::Relaxed),
        })
    }
}

/// What the audio thread holds.
pub struct AudioSide {
    requests: Sender<DecodeRequest>,
    phrases: Receiver<Box<Phrase>>,
    spent: Sender<Box<Phrase>>,
    /// Where the audio thread publishes the next change point.
    pub clock: Arc<ChangeClock>,
}

/// What the worker thread holds.
pub struct WorkerSide {
    /// Decode requests from the audio thread, oldest first.
    pub requests: Receiver<DecodeRequest>,
    /// Finished phrases for the audio thread.
    pub phrases: Sender<Box<Phrase>>,
    /// Phrases the audio thread no longer needs, to be decoded into again.
    pub spent: Receiver<Box<Phrase>>,
    /// When the next phrase change will be heard.
    pub clock: Arc<ChangeClock>,
}

/// Creates both sides with [`PHRASE_POOL`] preallocated phrases waiting on the
/// worker side's `spent` channel.
pub fn bridge() -> (AudioSide, WorkerSide) {
    let (request_tx, request_rx) = bounded(REQUEST_QUEUE);
    let (phrase_tx, phrase_rx) = bounded(PHRASE_POOL);
    let (spent_tx, spent_rx) = bounded(PHRASE_POOL);
    for _ in 0..PHRASE_POOL {
        spent_tx
            .send(Box::default())
            .expect("the spent channel holds the whole pool");
    }
    let clock = Arc::new(ChangeClock::new());
    (
        AudioSide {
            requests: request_tx,
            phrases: phrase_rx,
            spent: spent_tx,
            clock: clock.clone(),
        },
        WorkerSide {
            requests: request_rx,
            phrases: phrase_tx,
            spent: spent_rx,
            clock,
        },
    )
}

impl AudioSide {
    /// Queues a request without blocking. Returns `false` if the queue is full
    /// (or the worker is gone); the caller tries again on a later block.
    pub fn request(&self, request: DecodeRequest) -> bool {
        self.requests.try_send(request).is_ok()
    }

    /// A finished phrase, if one is waiting.
    pub fn try_receive(&self) -> Option<Box<Phrase>> {
        self.phrases.try_recv().ok()
    }

    /// Waits up to `timeout` for a finished phrase. Offline rendering only:
    /// the real-time audio thread must never wait.
    pub fn receive_within(&self, timeout: std::time::Duration) -> Option<Box<Phrase>> {
        self.phrases.recv_timeout(timeout).ok()
    }

    /// Returns a phrase to the worker. The spent channel has room for the whole
    /// pool, so this cannot fail while the worker lives; if the worker is gone
    /// the phrase is handed back to the caller rather than dropped here.
    pub fn give_back(&self, phrase: Box<Phrase>) -> Result<(), Box<Phrase>> {
        self.spent.try_send(phrase).map_err(|error| match error {
            TrySendError::Full(phrase) | TrySendError::Disconnected(phrase) => phrase,
        })
    }
}

/// What the audio thread is playing, for the GUI. Written by the audio
/// thread every block (relaxed atomic stores), read by the GUI.
pub struct NowPlaying {
    /// Request id of the phrase playing (0: none).
    playing: AtomicU64,
    /// Request id of the phrase waiting for its bar line (0: none).
    waiting: AtomicU64,
    /// Step of the playing phrase heard last; -1 while stopped.
    step: AtomicI32,
    /// Host tempo in BPM.
    tempo: AtomicF32,
    /// Time signature, numerator and denominator.
    meter: [AtomicU32; 2],
    /// The chord last played into the note input (its pitch classes; 0: none).
    played_chord: AtomicU32,
}

impl Default for NowPlaying {
    fn default() -> Self {
        NowPlaying {
            playing: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            step: AtomicI32::new(-1),
            tempo: AtomicF32::new(120.0),
            meter: [AtomicU32::new(4), AtomicU32::new(4)],
            played_chord: AtomicU32::new(0),
        }
    }
}

impl NowPlaying {
    /// Audio thread: the chord last played into the note input.
    pub fn publish_played_chord(&self, chord: Option<Chord>) {
        let mask = chord.map_or(0, Chord::pitch_classes);
        self.played_chord.store(u32::from(mask), Ordering::Relaxed);
    }

    /// The chord last played into the note input, if any.
    pub fn played_chord(&self) -> Option<Chord> {
        let mask = self.played_chord.load(Ordering::Relaxed) as u16;
        (mask != 0).then(|| Chord::from_pitch_classes(mask))
    }

    /// Publishes the state after a block (audio thread; lock-free).
    pub fn publish(
        &self,
        playing: Option<u64>,
        waiting: Option<u64>,
        step: Option<usize>,
        tempo: f64,
        meter: (u32, u32),
    ) {
        self.playing.store(playing.unwrap_or(0), Ordering::Relaxed);
        self.waiting.store(waiting.unwrap_or(0), Ordering::Relaxed);
        self.step
            .store(step.map_or(-1, |step| step as i32), Ordering::Relaxed);
        self.tempo.store(tempo as f32, Ordering::Relaxed);
        self.meter[0].store(meter.0, Ordering::Relaxed);
        self.meter[1].store(meter.1, Ordering::Relaxed);
    }

    /// Request id of the phrase playing.
    pub fn playing(&self) -> Option<u64> {
        Some(self.playing.load(Ordering::Relaxed)).filter(|&id| id != 0)
    }

    /// Request id of the phrase that takes over at the next change.
    pub fn waiting(&self) -> Option<u64> {
        Some(self.waiting.load(Ordering::Relaxed)).filter(|&id| id != 0)
    }

    /// Step of the playing phrase heard last, `None` while stopped.
    pub fn step(&self) -> Option<usize> {
        usize::try_from(self.step.load(Ordering::Relaxed)).ok()
    }

    /// Host tempo in BPM.
    pub fn tempo(&self) -> f64 {
        f64::from(self.tempo.load(Ordering::Relaxed))
    }

    /// Time signature as (numerator, denominator).
    pub fn meter(&self) -> (u32, u32) {
        (
            self.meter[0].load(Ordering::Relaxed),
            self.meter[1].load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_pool_starts_on_the_worker_side() {
        let (_audio, worker) = bridge();
        assert_eq!(worker.spent.len(), PHRASE_POOL);
    }

    #[test]
    fn a_phrase_travels_to_the_audio_thread_and_back() {
        let (audio, worker) = bridge();
        let mut phrase = worker.spent.try_recv().unwrap();
        phrase.request_id = 7;
        worker.phrases.try_send(phrase).unwrap();
        let received = audio.try_receive().expect("phrase arrives");
        assert_eq!(received.request_id, 7);
        assert!(audio.give_back(received).is_ok());
        assert_eq!(worker.spent.len(), PHRASE_POOL);
    }

    #[test]
    fn requests_never_block_when_the_worker_falls_behind() {
        let (audio, _worker) = bridge();
        let request = DecodeRequest {
            id: 0,
            knobs: KnobSnapshot::default(),
            offline: false,
        };
        let accepted = (0..REQUEST_QUEUE * 2)
            .filter(|_| audio.request(request))
            .count();
        assert_eq!(accepted, REQUEST_QUEUE);
    }

    #[test]
    fn the_worker_reads_the_change_point_the_audio_thread_published() {
        let (audio, worker) = bridge();
        assert_eq!(worker.clock.read(), None, "nothing is coming before play");
        let block_started = Instant::now();
        audio.clock.publish(block_started, Some(1.5), 4, 0.01, 2.0);
        let timing = worker.clock.read().expect("a change point");
        let error = timing
            .next_change
            .duration_since(block_started + Duration::from_millis(1500));
        assert!(error < Duration::from_micros(1), "{error:?}");
        assert_eq!(timing.block, Duration::from_millis(10));
        assert_eq!(timing.bar, Duration::from_secs(2));
        assert_eq!(timing.change_song_bar, 4, "the song bar that starts there");
        audio.clock.publish(Instant::now(), None, 0, 0.01, 2.0);
        assert_eq!(worker.clock.read(), None, "a stop clears it");
    }
}
