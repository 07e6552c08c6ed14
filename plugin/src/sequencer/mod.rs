//! AUDIO THREAD ONLY: host transport -> bar clock -> note events.
//!
//! Everything here runs inside `process()`: no allocation, no locks, no
//! blocking, no logging. Phrases arrive already decoded (see the bridge); the
//! sequencer only decides which notes of which phrase sound at which sample.
//!
//! Rules a musician can rely on:
//! - Bars are counted from the song position and the meter (see
//!   [`clock::BarGrid`]); a host's bar fields are only a hint.
//! - Bar `n` of the song plays bar `n mod N` of the current N-bar phrase
//!   (2-16 bars: the progression's length).
//! - Nothing plays before the song start (pre-roll, count-in), nor at a tempo
//!   outside [`TEMPO_RANGE`].
//! - A new phrase takes over only on a bar line whose number is a multiple of
//!   the change quantization (1, 2 or 4 bars).
//! - A bar shorter than 16 steps (3/4, 7/8) plays the first steps of the
//!   phrase bar; a longer one (5/4) rests after step 16.
//! - Stop, any jump in position (loops, locate), bypass and reset end every
//!   sounding note at once; nothing plays while the transport is stopped.
//! - A note off the grid (humanize, swing) sounds up to a third of a 16th
//!   early or late: each 16th is looked at that much before it is due, so an
//!   early note goes out in the block (and before the bar line) it belongs
//!   before, and a late one waits in a fixed-size queue for its block. Every
//!   note keeps its length, so its note-off follows its note-on.

pub mod clock;

use clock::{BarGrid, BlockTiming, Meter, STEPS_PER_QUARTER, bar_position, samples_per_quarter};

use crate::pattern::{MAX_OFFSET, MODEL_BARS, OFFSET_UNITS_PER_STEP, Part, Phrase, STEPS_PER_BAR};

/// A position change larger than this (in quarters) between the expected and
/// the reported block start is a jump: about a 32nd note.
const JUMP_TOLERANCE_QUARTERS: f64 = 0.125;
/// Notes that can sound at once: 9 drum classes + bass + melody, with room.
const MAX_SOUNDING: usize = 32;
/// Notes looked at but not yet started: those of the 16ths in the look-ahead,
/// with room.
const MAX_WAITING: usize = 64;
/// How long before its 16th a step is looked at, in 16ths: the earliest a
/// note may sound.
const LOOK_AHEAD_STEPS: f64 = MAX_OFFSET as f64 / OFFSET_UNITS_PER_STEP as f64;
/// Tempo assumed when the host reports none.
const DEFAULT_TEMPO: f64 = 120.0;
/// Tempi the sequencer plays at, in BPM; outside it nothing new starts.
pub const TEMPO_RANGE: std::ops::RangeInclusive<f64> = 1.0..=999.0;

/// Passes events on with their timing moved `by` samples later: the second
/// span of a block that wraps around a loop.
struct Shifted<'a, O> {
    out: &'a mut O,
    by: u32,
}

impl<O: SequencerOutput> SequencerOutput for Shifted<'_, O> {
    fn note_on(&mut self, timing: u32, channel: u8, pitch: u8, velocity: u8) {
        self.out.note_on(timing + self.by, channel, pitch, velocity);
    }
    fn note_off(&mut self, timing: u32, channel: u8, pitch: u8) {
        self.out.note_off(timing + self.by, channel, pitch);
    }
    fn retire(&mut self, phrase: Box<Phrase>) {
        self.out.retire(phrase);
    }
    fn bar_started(&mut self) {
        self.out.bar_started();
    }
}

/// Where a part's notes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartRouting {
    /// Whether the part plays.
    pub enabled: bool,
    /// MIDI channel, 0-based (drums default to 9, i.e. channel 10).
    pub channel: u8,
}

/// Everything the sequencer needs to know about one block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockInput {
    /// Samples in the block.
    pub samples: u32,
    /// Sample rate in Hz.
    pub sample_rate: f64,
    /// Whether the host transport is running.
    pub playing: bool,
    /// Tempo in BPM, if the host says.
    pub tempo: Option<f64>,
    /// Song position of the block start in quarters, if the host says.
    pub position_quarters: Option<f64>,
    /// Start of the bar containing the block start, in quarters, as the host
    /// reports it: a hint, used only while it agrees with the position.
    pub bar_start_quarters: Option<f64>,
    /// The host's active loop (start, end) in quarters.
    pub loop_quarters: Option<(f64, f64)>,
    /// The time signature.
    pub meter: Meter,
    /// New phrases take over every this many bars (1, 2 or 4).
    pub change_every_bars: u32,
    /// Per part, by [`Part::index`]; read at bar lines.
    pub routing: [PartRouting; 3],
    /// Bypassed: silent, all notes ended.
    pub bypassed: bool,
}

/// Receives what the sequencer does.
pub trait SequencerOutput {
    /// A note starts `timing` samples into the block.
    fn note_on(&mut self, timing: u32, channel: u8, pitch: u8, velocity: u8);
    /// A note ends `timing` samples into the block.
    fn note_off(&mut self, timing: u32, channel: u8, pitch: u8);
    /// A phrase the sequencer no longer needs, to go back to the worker.
    fn retire(&mut self, phrase: Box<Phrase>);
    /// A bar line passed in this block (after any phrase change on it).
    fn bar_started(&mut self) {}
}

#[derive(Debug, Clone, Copy)]
struct SoundingNote {
    channel: u8,
    pitch: u8,
    /// Song time, in 16ths, at which it ends.
    end: f64,
}

/// A note looked at but not started yet (it is due in a later block, or
/// later in this one).
#[derive(Debug, Clone, Copy)]
struct WaitingNote {
    note: SoundingNote,
    velocity: u8,
    /// Song time, in 16ths, at which it starts.
    start: f64,
}

/// The notes currently held, so that each one gets exactly one note-off,
/// and those waiting to start; both in song time, sent in time order.
struct Voices {
    sounding: [SoundingNote; MAX_SOUNDING],
    sounding_len: usize,
    waiting: [WaitingNote; MAX_WAITING],
    waiting_len: usize,
}

impl Voices {
    fn new() -> Self {
        let silent = SoundingNote {
            channel: 0,
            pitch: 0,
            end: 0.0,
        };
        Voices {
            sounding: [silent; MAX_SOUNDING],
            sounding_len: 0,
            waiting: [WaitingNote {
                note: silent,
                velocity: 0,
                start: 0.0,
            }; MAX_WAITING],
            waiting_len: 0,
        }
    }

    fn any_sounding(&self) -> bool {
        self.sounding_len > 0
    }

    /// Ends every sounding note at `timing` and forgets the waiting ones.
    fn end_all(&mut self, timing: u32, out: &mut impl SequencerOutput) {
        for note in &self.sounding[..self.sounding_len] {
            out.note_off(timing, note.channel, note.pitch);
        }
        self.sounding_len = 0;
        self.waiting_len = 0;
    }

    /// Every note sounding or waiting ends by song time `at` at the latest
    /// (a bar line that starts clean); a waiting note that would start at
    /// or after it is dropped.
    fn cut_at(&mut self, at: f64) {
        for note in &mut self.sounding[..self.sounding_len] {
            note.end = note.end.min(at);
        }
        let mut index = 0;
        while index < self.waiting_len {
            if self.waiting[index].start >= at {
                self.waiting_len -= 1;
                self.waiting[index] = self.waiting[self.waiting_len];
            } else {
                let note = &mut self.waiting[index].note;
                note.end = note.end.min(at);
                index += 1;
            }
        }
    }

    /// Queues a note to start at song time `start`. A full queue drops it
    /// (never reached: see [`MAX_WAITING`]).
    fn wait(&mut self, start: f64, note: SoundingNote, velocity: u8) {
        if self.waiting_len < MAX_WAITING {
            self.waiting[self.waiting_len] = WaitingNote {
                note,
                velocity,
                start,
            };
            self.waiting_len += 1;
        }
    }

    /// Sends, in time order, every note-off and note-on due before the end
    /// of the block `timing` describes; at equal times note-offs go first,
    /// so a key struck again is released before it sounds.
    fn send_due(&mut self, timing: &BlockTiming, out: &mut impl SequencerOutput) {
        let samples = i64::from(timing.samples);
        let sample_of = |at: f64| timing.time_offset(at).clamp(0, samples.max(1) - 1) as u32;
        loop {
            let ending = (0..self.sounding_len)
                .filter(|&i| timing.time_offset(self.sounding[i].end) < samples)
                .min_by(|&a, &b| self.sounding[a].end.total_cmp(&self.sounding[b].end));
            let starting = (0..self.waiting_len)
                .filter(|&i| timing.time_offset(self.waiting[i].start) < samples)
                .min_by(|&a, &b| self.waiting[a].start.total_cmp(&self.waiting[b].start));
            match (ending, starting) {
                (Some(off), Some(on)) if self.sounding[off].end <= self.waiting[on].start => {
                    self.release(off, sample_of(self.sounding[off].end), out);
                }
                (_, Some(on)) => {
                    let waiting = self.waiting[on];
                    self.waiting_len -= 1;
                    self.waiting[on] = self.waiting[self.waiting_len];
                    self.start(
                        sample_of(waiting.start),
                        waiting.note,
                        waiting.velocity,
                        out,
                    );
                }
                (Some(off), None) => {
                    self.release(off, sample_of(self.sounding[off].end), out);
                }
                (None, None) => return,
            }
        }
    }

    fn release(&mut self, index: usize, timing: u32, out: &mut impl SequencerOutput) {
        let note = self.sounding[index];
        out.note_off(timing, note.channel, note.pitch);
        self.sounding_len -= 1;
        self.sounding[index] = self.sounding[self.sounding_len];
    }

    fn start(
        &mut self,
        timing: u32,
        note: SoundingNote,
        velocity: u8,
        out: &mut impl SequencerOutput,
    ) {
        // The same key struck again (two parts sharing a channel) is released first.
        if let Some(index) = (0..self.sounding_len).find(|&i| {
            self.sounding[i].channel == note.channel && self.sounding[i].pitch == note.pitch
        }) {
            self.release(index, timing, out);
        }
        if self.sounding_len == MAX_SOUNDING {
            let earliest = (0..self.sounding_len)
                .min_by(|&a, &b| self.sounding[a].end.total_cmp(&self.sounding[b].end))
                .unwrap_or(0);
            self.release(earliest, timing, out);
        }
        out.note_on(timing, note.channel, note.pitch, velocity);
        self.sounding[self.sounding_len] = note;
        self.sounding_len += 1;
    }
}

/// Plays phrases in time with the host. Owned by the plugin; used only on the
/// audio thread (and in tests, which drive it like a host would).
pub struct Sequencer {
    /// The phrase playing now.
    current: Option<Box<Phrase>>,
    /// The newest decoded phrase, waiting for its bar line.
    next: Option<Box<Phrase>>,
    voices: Voices,
    /// Next song step to play; `None` after a stop or reset.
    next_step: Option<i64>,
    /// Where the next block should start if the transport runs on.
    expected_start: f64,
    /// Position used when the host reports none (the clock runs from 0).
    free_running_quarters: f64,
    /// Part routing, latched at bar lines so a mute lands on the bar.
    routing: [PartRouting; 3],
    /// Set by `reset()`: end every note at the start of the next block.
    release_pending: bool,
    /// Step of the current phrase played last; `None` while stopped.
    playhead: Option<usize>,
    /// Song position (quarters) of the next bar line where a waiting phrase
    /// may take over; `None` while stopped.
    next_change: Option<f64>,
    /// The song bar that starts there.
    next_change_bar: i64,
    /// Song position of the last block's start, in quarters.
    block_start_quarters: f64,
    /// Seconds per quarter note in the last block.
    seconds_per_quarter: f64,
    /// Whether the host's bar start has always agreed with its song position
    /// and meter; after the first disagreement the bar grid comes from the
    /// position alone.
    host_bars_agree: bool,
    /// Whether the host has reported a song position (else the clock runs
    /// freely from the song start).
    host_gives_positions: bool,
}

impl Default for Sequencer {
    fn default() -> Self {
        Sequencer {
            current: None,
            next: None,
            voices: Voices::new(),
            next_step: None,
            expected_start: 0.0,
            free_running_quarters: 0.0,
            routing: [PartRouting {
                enabled: true,
                channel: 0,
            }; 3],
            release_pending: false,
            playhead: None,
            next_change: None,
            next_change_bar: 0,
            block_start_quarters: 0.0,
            seconds_per_quarter: 0.5,
            host_bars_agree: true,
            host_gives_positions: false,
        }
    }
}

impl Sequencer {
    /// Hands over a newly decoded phrase. With nothing playing it starts at
    /// once; otherwise it waits for its bar line, replacing any phrase that
    /// was waiting (which goes back through `out`). The rest of a phrase
    /// (see [`Phrase::completes_previous`]) replaces that phrase where it
    /// is, waiting or playing, at once; if that phrase is gone it is dropped.
    pub fn offer(&mut self, phrase: Box<Phrase>, out: &mut impl SequencerOutput) {
        let id = Some(phrase.request_id);
        let slot = if !phrase.completes_previous || self.current.is_none() {
            if self.current.is_none() {
                &mut self.current
            } else {
                &mut self.next
            }
        } else if self.next.as_ref().map(|next| next.request_id) == id {
            &mut self.next
        } else if self.playing_phrase_id() == id {
            &mut self.current
        } else {
            out.retire(phrase);
            return;
        };
        if let Some(replaced) = slot.replace(phrase) {
            out.retire(replaced);
        }
    }

    /// Request id of the newest phrase held (playing or waiting).
    pub fn newest_phrase_id(&self) -> Option<u64> {
        self.next
            .as_ref()
            .or(self.current.as_ref())
            .map(|phrase| phrase.request_id)
    }

    /// Request id of the phrase playing now.
    pub fn playing_phrase_id(&self) -> Option<u64> {
        self.current.as_ref().map(|phrase| phrase.request_id)
    }

    /// Request id of the phrase waiting for its bar line.
    pub fn waiting_phrase_id(&self) -> Option<u64> {
        self.next.as_ref().map(|phrase| phrase.request_id)
    }

    /// Step of the playing phrase (`0..phrase.steps()`) heard last, `None`
    /// while the transport is stopped.
    pub fn playhead(&self) -> Option<usize> {
        self.playhead
    }

    /// Song position, in quarters, of the next bar line on which a waiting
    /// phrase would take over (the worker decodes just before it); `None`
    /// while stopped.
    pub fn next_change(&self) -> Option<f64> {
        self.next_change
    }

    /// The song bar (0 = the first) that starts at the next change point.
    pub fn next_change_bar(&self) -> i64 {
        self.next_change_bar
    }

    /// Seconds from the start of the last block to the moment a waiting
    /// phrase is taken up: the look-ahead before the next change point;
    /// `None` while stopped.
    pub fn seconds_to_next_change(&self) -> Option<f64> {
        self.next_change.map(|change| {
            let taken_up = change - LOOK_AHEAD_STEPS / STEPS_PER_QUARTER;
            (taken_up - self.block_start_quarters) * self.seconds_per_quarter
        })
    }

    /// Seconds per quarter note at the last block's tempo.
    pub fn seconds_per_quarter(&self) -> f64 {
        self.seconds_per_quarter
    }

    /// Whether any note is sounding.
    pub fn is_sounding(&self) -> bool {
        self.voices.any_sounding()
    }

    /// The host reset or deactivated the plugin: forget the position, and end
    /// every note at the start of the next block (no events can go out now).
    pub fn reset(&mut self) {
        self.next_step = None;
        self.release_pending = self.voices.any_sounding();
        self.voices.waiting_len = 0;
    }

    /// Plays one block.
    pub fn process(&mut self, input: &BlockInput, out: &mut impl SequencerOutput) {
        if self.release_pending {
            self.voices.end_all(0, out);
            self.release_pending = false;
        }
        // A tempo outside the musical range (a broken host, a corrupt
        // project) would turn one block into a storm of notes: play nothing.
        let tempo = match input.tempo {
            None => Some(DEFAULT_TEMPO),
            Some(tempo) => Some(tempo).filter(|t| TEMPO_RANGE.contains(t)),
        };
        let (true, false, Some(tempo)) =
            (input.playing && input.samples > 0, input.bypassed, tempo)
        else {
            self.voices.end_all(0, out);
            self.next_step = None;
            self.playhead = None;
            self.next_change = None;
            // A host that gives no position starts again from the top.
            self.free_running_quarters = 0.0;
            return;
        };
        let position = input.position_quarters.filter(|q| q.is_finite());
        if position.is_some() {
            self.host_gives_positions = true;
        } else if self.host_gives_positions && self.next_step.is_none() {
            // Play just started and this host, which reports positions, left
            // this block's out: wait for the next block rather than guess.
            self.playhead = None;
            self.next_change = None;
            return;
        }
        let start = position.unwrap_or(self.free_running_quarters);
        let samples_per_quarter = samples_per_quarter(input.sample_rate, tempo);
        self.seconds_per_quarter = 60.0 / tempo;
        // A host that does not split its blocks at the loop end: play up to
        // the end, then on from the loop start, within this block.
        let end = start + f64::from(input.samples) / samples_per_quarter;
        let wrap = input.loop_quarters.and_then(|(loop_start, loop_end)| {
            let inside = loop_end > loop_start + JUMP_TOLERANCE_QUARTERS
                && start < loop_end
                && end > loop_end + 1e-9;
            // The first sample at or after the loop end (positions arrive in
            // fixed point, hence the thousandth of a sample).
            let samples = ((loop_end - start) * samples_per_quarter - 1e-3).ceil() as u32;
            (inside && samples > 0 && samples < input.samples).then_some((loop_start, samples))
        });
        match wrap {
            Some((loop_start, before_end)) => {
                self.process_span(input, start, samples_per_quarter, before_end, 0, out);
                let rest = input.samples - before_end;
                self.process_span(
                    input,
                    loop_start,
                    samples_per_quarter,
                    rest,
                    before_end,
                    out,
                );
            }
            None => self.process_span(input, start, samples_per_quarter, input.samples, 0, out),
        }
    }

    /// Plays `samples` samples from song position `start`, `offset` samples
    /// into the host's block.
    fn process_span(
        &mut self,
        input: &BlockInput,
        start: f64,
        samples_per_quarter: f64,
        samples: u32,
        offset: u32,
        out: &mut impl SequencerOutput,
    ) {
        let out = &mut Shifted { out, by: offset };
        let timing = BlockTiming {
            start_quarters: start,
            samples_per_quarter,
            samples,
        };
        let continuous = self.next_step.is_some()
            && (timing.start_quarters - self.expected_start).abs() < JUMP_TOLERANCE_QUARTERS;
        if !continuous {
            self.voices.end_all(0, out);
            self.next_step = Some(timing.first_step());
            self.routing = input.routing;
        }
        self.expected_start = timing.end_quarters();
        self.free_running_quarters = timing.end_quarters();
        self.block_start_quarters = timing.start_quarters;

        let meter = input.meter;
        let host_bar_start = input.bar_start_quarters.filter(|_| self.host_bars_agree);
        let grid = BarGrid::at(timing.start_quarters, host_bar_start, meter);
        if host_bar_start.is_some() && !grid.from_host {
            // One disagreement and the host's bar fields are never used
            // again: a host that reports bars wrongly (Ardour 7 counts them
            // from 1, 4 quarters each) can be right by chance for a while.
            self.host_bars_agree = false;
        }
        let bar_start_step = (grid.start * STEPS_PER_QUARTER).round() as i64;
        let bar_number = grid.number;
        let mut step = self.next_step.unwrap_or_else(|| timing.first_step());
        // Each 16th is looked at a third of a 16th before it is due, so that
        // its early notes can still go out on time.
        while timing.time_offset(step as f64 - LOOK_AHEAD_STEPS) < i64::from(timing.samples) {
            let (bar, step_in_bar) = bar_position(step, bar_start_step, bar_number, meter);
            if step_in_bar == 0 {
                self.bar_line(step, bar, input, out);
                out.bar_started();
            }
            // Nothing plays before the song start (pre-roll, count-in).
            if step >= 0 && (step_in_bar as usize) < STEPS_PER_BAR {
                let phrase_step = self.phrase_bar(bar) * STEPS_PER_BAR + step_in_bar as usize;
                self.playhead = Some(phrase_step);
                self.play_step(step, phrase_step);
            }
            step += 1;
        }
        self.voices.send_due(&timing, out);
        self.next_step = Some(step);
        let (change_step, change_bar) = next_change_point(
            step,
            bar_start_step,
            bar_number,
            meter,
            input.change_every_bars,
        );
        self.next_change = Some(change_step as f64 / STEPS_PER_QUARTER);
        self.next_change_bar = change_bar;
    }

    /// A bar line at song step `step` (bar `bar`) is looked at: a waiting
    /// phrase takes over if the change setting allows, and every note is
    /// cut at the line unless the same phrase plays on into its next bar.
    fn bar_line(
        &mut self,
        step: i64,
        bar: i64,
        input: &BlockInput,
        out: &mut impl SequencerOutput,
    ) {
        let mut swapped = false;
        if bar.rem_euclid(i64::from(input.change_every_bars.max(1))) == 0
            && let Some(next) = self.next.take()
        {
            if let Some(old) = self.current.replace(next) {
                out.retire(old);
            }
            swapped = true;
        }
        // Notes may run on over the bar line only into the same phrase's
        // next bar; anything else starts clean.
        let continues_phrase = !swapped
            && self.phrase_bar(bar) != 0
            && input.meter.steps_per_bar() == STEPS_PER_BAR as i64;
        let changed_channel = self
            .routing
            .iter()
            .zip(&input.routing)
            .any(|(a, b)| a.channel != b.channel);
        if !continues_phrase || changed_channel {
            self.voices.cut_at(step as f64);
        }
        self.routing = input.routing;
    }

    /// The bar of the current phrase that song bar `bar` plays.
    fn phrase_bar(&self, bar: i64) -> usize {
        let bars = self
            .current
            .as_ref()
            .map_or(MODEL_BARS, |phrase| phrase.bars);
        bar.rem_euclid(bars.max(1) as i64) as usize
    }

    /// Queues the notes of `phrase_step` of the current phrase, due at song
    /// step `step` (each off it by its own offset).
    fn play_step(&mut self, step: i64, phrase_step: usize) {
        let Some(phrase) = &self.current else {
            return;
        };
        for part in Part::ALL {
            let routing = self.routing[part.index()];
            if !routing.enabled {
                continue;
            }
            for note in phrase.part(part).notes_at(phrase_step) {
                // Never before the song start.
                let start = (step as f64 + note.start() - f64::from(note.step)).max(0.0);
                self.voices.wait(
                    start,
                    SoundingNote {
                        channel: routing.channel,
                        pitch: note.pitch,
                        end: start + f64::from(note.length_steps),
                    },
                    note.velocity,
                );
            }
        }
    }
}

/// The first song step at or after `step` that starts a bar on which a new
/// phrase may take over (a bar whose number is a multiple of `every_bars`),
/// and that bar's number.
fn next_change_point(
    step: i64,
    bar_start_step: i64,
    bar_number: i64,
    meter: Meter,
    every_bars: u32,
) -> (i64, i64) {
    let steps_per_bar = meter.steps_per_bar();
    let every = i64::from(every_bars.max(1));
    let (bar, step_in_bar) = bar_position(step, bar_start_step, bar_number, meter);
    let (mut line, mut line_bar) = if step_in_bar == 0 {
        (step, bar)
    } else {
        (step - step_in_bar + steps_per_bar, bar + 1)
    };
    let bars_to_go = (every - line_bar.rem_euclid(every)) % every;
    line += bars_to_go * steps_per_bar;
    line_bar += bars_to_go;
    debug_assert_eq!(line_bar.rem_euclid(every), 0);
    (line, line_bar)
}

#[cfg(test)]
mod tests;
