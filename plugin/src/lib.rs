//! Latent Trio: a CLAP and VST3 instrument that plays drums, bass and melody
//! from MusicVAE models, in time with the host.
//!
//! Threads (see DESIGN.md): the audio thread runs [`sequencer`] and never
//! waits; the worker thread runs [`engine`]; [`bridge`] is where they meet.

pub mod bridge;
pub mod editor;
pub mod engine;
pub mod harmony;
pub mod knobs;
pub mod midi_clip;
pub mod midi_file;
pub mod params;
pub mod pattern;
pub mod render;
pub mod sequencer;
pub mod state;
pub mod stored;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};
use nice_plug::midi::{Channel, Key, VoiceID};
use nice_plug::prelude::*;

use bridge::{AudioSide, DecodeRequest, NowPlaying};
use engine::worker::{self, EngineStatus, WorkerCommand, WorkerSettings};
use harmony::Chord;
use knobs::KnobSnapshot;
use params::LatentTrioParams;
use pattern::{Part, Phrase};
use sequencer::clock::Meter;
use sequencer::{BlockInput, PartRouting, Sequencer, SequencerOutput};

/// Longest an offline bounce waits for the worker before playing on without
/// the newest phrase (only reached when the worker is stuck).
const OFFLINE_WAIT: Duration = Duration::from_secs(30);

/// The plugin.
pub struct LatentTrio {
    /// Host-visible parameters. Written by the host and GUI; read by the audio
    /// thread every block and by the worker for the provider choice.
    params: Arc<LatentTrioParams>,
    /// Audio thread: turns the transport and the current phrase into notes.
    sequencer: Sequencer,
    /// Audio thread's end of the bridge; `None` until the first activation
    /// starts the worker (a host scanning plugins never starts it).
    bridge: Option<AudioSide>,
    /// The worker thread; main thread starts it, `Drop` lets it end.
    worker: Option<JoinHandle<()>>,
    /// Worker's status for the GUI and tests (worker writes, others read).
    status: Arc<EngineStatus>,
    /// What the audio thread plays, for the GUI (audio writes, GUI reads).
    now_playing: Arc<NowPlaying>,
    /// GUI -> worker requests (imports, scene stores); the GUI holds a clone.
    commands: Sender<WorkerCommand>,
    /// The worker's end of `commands`, cloned into it when it starts.
    command_inbox: Receiver<WorkerCommand>,
    /// Audio thread: the snapshot most recently sent to the worker, and
    /// whether it was sent for an offline bounce (which the worker answers at
    /// once; a real-time request is answered only when it would be heard).
    requested: Option<(KnobSnapshot, bool)>,
    /// Audio thread: id of the most recent request.
    last_request_id: u64,
    /// Audio thread: the morph position being played, which follows the
    /// Morph knob one step per bar when "Morph Over" is set.
    played_morph: f32,
    /// Audio thread: the keys held on the note input (bit k = MIDI key k).
    held_keys: u128,
    /// Audio thread: the chord last held on the note input; it stays when
    /// the keys are let go, so a chord can be played and released.
    played_chord: Option<Chord>,
    /// Set at activation: sample rate in Hz.
    sample_rate: f32,
    /// Set at activation: offline rendering may wait for the worker.
    offline: bool,
}

impl Default for LatentTrio {
    fn default() -> Self {
        let (commands, command_inbox) = unbounded();
        LatentTrio {
            params: Arc::new(LatentTrioParams::default()),
            sequencer: Sequencer::default(),
            bridge: None,
            worker: None,
            status: Arc::new(EngineStatus::default()),
            now_playing: Arc::new(NowPlaying::default()),
            commands,
            command_inbox,
            requested: None,
            last_request_id: 0,
            played_morph: 0.0,
            held_keys: 0,
            played_chord: None,
            sample_rate: 48_000.0,
            offline: false,
        }
    }
}

/// Sends the sequencer's notes to the host and its spent phrases to the worker.
struct HostOutput<'a, C> {
    context: &'a mut C,
    bridge: Option<&'a AudioSide>,
    /// Bar lines crossed in this block.
    bars_started: u32,
}

impl<C: ProcessContext<LatentTrio>> SequencerOutput for HostOutput<'_, C> {
    fn note_on(&mut self, timing: u32, channel: u8, pitch: u8, velocity: u8) {
        // A full host event buffer drops the note; nothing else can be done
        // on the audio thread, and the matching note-off is then harmless.
        let _ = self.context.try_send_event(NoteEvent::NoteOn {
            timing,
            voice_id: VoiceID::Wildcard,
            channel: Channel::Number(channel),
            key: Key::Number(pitch),
            velocity: f32::from(velocity) / 127.0,
        });
    }

    fn note_off(&mut self, timing: u32, channel: u8, pitch: u8) {
        let _ = self.context.try_send_event(NoteEvent::NoteOff {
            timing,
            voice_id: VoiceID::Wildcard,
            channel: Channel::Number(channel),
            key: Key::Number(pitch),
            velocity: 0.0,
        });
    }

    fn retire(&mut self, phrase: Box<Phrase>) {
        if let Some(bridge) = self.bridge {
            if let Err(phrase) = bridge.give_back(phrase) {
                // The worker is gone: keep the memory rather than free it here.
                std::mem::forget(phrase);
            }
        } else {
            std::mem::forget(phrase);
        }
    }

    fn bar_started(&mut self) {
        self.bars_started += 1;
    }
}

impl LatentTrio {
    /// The worker's status (model state, provider, decode time).
    pub fn status(&self) -> Arc<EngineStatus> {
        self.status.clone()
    }

    fn start_worker(&mut self) {
        if self.bridge.is_some() {
            return;
        }
        let (audio, worker_side) = bridge::bridge();
        let params = self.params.clone();
        let settings = WorkerSettings {
            models: engine::models_folder(),
            provider_choice: Box::new(move || params.provider.value().into()),
            status: self.status.clone(),
            stored: self.params.stored.clone(),
            commands: self.command_inbox.clone(),
        };
        match worker::spawn(worker_side, settings) {
            Ok(handle) => {
                self.worker = Some(handle);
                self.bridge = Some(audio);
            }
            Err(error) => {
                nice_plug::nice_error!("Latent Trio could not start its worker thread: {error}")
            }
        }
    }

    /// Asks the worker for the current knobs if they changed. Never blocks.
    fn request_if_changed(&mut self) {
        let Some(bridge) = &self.bridge else {
            return;
        };
        let snapshot = self.params.snapshot(self.played_morph, self.played_chord);
        // A bounce needs an offline request of its own, even for the same knobs.
        if self
            .requested
            .is_some_and(|(r, offline)| r.decodes_like(&snapshot) && offline == self.offline)
        {
            return;
        }
        let request = DecodeRequest {
            id: self.last_request_id + 1,
            knobs: snapshot,
            offline: self.offline,
        };
        if bridge.request(request) {
            self.last_request_id = request.id;
            self.requested = Some((snapshot, self.offline));
        }
    }

    /// Reads the note input: the keys held make the played chord (see
    /// [`harmony::Key::chord_of_held`]). Nothing from the input is passed
    /// on, so a held key can never leave a note stuck.
    fn hear_played_chords(&mut self, context: &mut impl ProcessContext<Self>) {
        let before = self.held_keys;
        while let Some(event) = context.next_event() {
            match event {
                NoteEvent::NoteOn {
                    key: Key::Number(key),
                    velocity,
                    ..
                } if velocity > 0.0 => self.held_keys |= 1 << (key & 0x7F),
                NoteEvent::NoteOn {
                    key: Key::Number(key),
                    ..
                }
                | NoteEvent::NoteOff {
                    key: Key::Number(key),
                    ..
                } => self.held_keys &= !(1 << (key & 0x7F)),
                // Every note of a channel (or of all) ends.
                NoteEvent::NoteOff {
                    key: Key::Wildcard, ..
                } => self.held_keys = 0,
                _ => {}
            }
        }
        if self.held_keys == before {
            return;
        }
        let pitch_classes = (0..12).fold(0u16, |mask, pitch_class| {
            let octaves = (pitch_class..128).step_by(12);
            let held = octaves
                .into_iter()
                .any(|key| self.held_keys >> key & 1 == 1);
            mask | u16::from(held) << pitch_class
        });
        let key = self.params.snapshot(self.played_morph, None).harmony.key();
        if let Some(chord) = key.chord_of_held(pitch_classes) {
            self.played_chord = Some(chord);
            self.now_playing.publish_played_chord(self.played_chord);
        }
    }

    /// Moves the played morph position toward the Morph knob: at once, or
    /// by 1/N of the way from A to B per bar line crossed when "Morph Over"
    /// is N bars.
    fn follow_morph(&mut self, bars_started: u32) {
        let target = self.params.morph.value();
        let bars = self.params.morph_bars.value();
        if bars <= 0 {
            self.played_morph = target;
            return;
        }
        let step = 1.0 / bars as f32;
        for _ in 0..bars_started {
            let gap = target - self.played_morph;
            self.played_morph = if gap.abs() <= step {
                target
            } else {
                self.played_morph + step.copysign(gap)
            };
        }
    }

    fn routing(&self) -> [PartRouting; 3] {
        Part::ALL.map(|part| {
            let (enabled, channel) = self.params.routing(part);
            PartRouting { enabled, channel }
        })
    }
}

impl Drop for LatentTrio {
    /// Ends the worker before the plugin goes: a host may unload the library
    /// right after destroying the instance, and a worker still running (say,
    /// half-way through loading a model) would then run unmapped code.
    fn drop(&mut self) {
        // Dropping the audio side disconnects every channel; the worker sees
        // that at its next receive or send and returns.
        self.bridge = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Plugin for LatentTrio {
    const NAME: &'static str = "Latent Trio";
    const VENDOR: &'static str = "Latent Trio developers";
    const URL: &'static str = "";
    const EMAIL: &'static str = "";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    // No audio in; a silent stereo output because some hosts (Ableton) only
    // load instruments that have one.
    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[AudioIOLayout {
        main_input_channels: None,
        main_output_channels: NonZeroU32::new(2),
        ..AudioIOLayout::const_default()
    }];
    const MIDI_INPUT: MidiConfig = MidiConfig::Basic;
    const MIDI_OUTPUT: MidiConfig = MidiConfig::Basic;
    const SAMPLE_ACCURATE_AUTOMATION: bool = false;

    type SysExMessage = ();
    type BackgroundTask = ();
    type Editor = nice_plug_egui::EguiEditor<editor::EditorApp>;

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn filter_state(state: &mut PluginState) {
        if is_newer_major_version(&state.version, Self::VERSION) {
            nice_plug::nice_error!(
                "This project was saved by Latent Trio {}, newer than this {}; its Latent Trio settings were not loaded. Update the plugin to restore them.",
                state.version,
                Self::VERSION
            );
            state.params.clear();
            state.fields.clear();
            return;
        }
        // A load replaces the whole state, every value within its range.
        for change in state::sanitise(state) {
            nice_plug::nice_error!("Latent Trio repaired the loaded project: {change}");
        }
    }

    fn editor(&mut self, _async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        editor::create(editor::EditorShared {
            params: self.params.clone(),
            status: self.status.clone(),
            now_playing: self.now_playing.clone(),
            commands: self.commands.clone(),
        })
    }

    fn activate(
        &mut self,
        _audio_io_layout: &AudioIOLayout,
        buffer_config: &BufferConfig,
        _context: &mut impl ActivateContext<Self>,
    ) -> bool {
        self.sample_rate = buffer_config.sample_rate;
        self.offline = buffer_config.process_mode == ProcessMode::Offline;
        // A loaded project plays its saved morph at once, without a glide.
        self.played_morph = self.params.morph.value();
        self.start_worker();
        // Start decoding now so the first bar is ready when the host plays.
        self.request_if_changed();
        true
    }

    fn reset(&mut self) {
        self.sequencer.reset();
        // The host sends no note-offs for keys held across a reset.
        self.held_keys = 0;
    }

    fn deactivate(&mut self) {
        self.sequencer.reset();
        self.held_keys = 0;
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        // Reading the monotonic clock neither allocates nor blocks.
        let block_started = std::time::Instant::now();
        for channel in buffer.as_slice() {
            channel.fill(0.0);
        }
        let new_seed = self.params.new_seed.value();
        let was_held = self.params.new_seed_held.swap(new_seed, Ordering::Relaxed);
        if new_seed && !was_held {
            self.params.seed_rolls.fetch_add(1, Ordering::Relaxed);
        }
        self.follow_morph(0);
        self.hear_played_chords(context);
        self.request_if_changed();

        let transport = context.transport();
        let input = BlockInput {
            samples: buffer.samples() as u32,
            sample_rate: f64::from(self.sample_rate),
            playing: transport.playing,
            tempo: transport.tempo,
            position_quarters: transport.pos_beats(),
            bar_start_quarters: transport.bar_start_pos_beats(),
            loop_quarters: transport.loop_range_beats(),
            meter: Meter::from_host(transport.time_sig_numerator, transport.time_sig_denominator),
            change_every_bars: self.params.change_every.value().bars(),
            routing: self.routing(),
            bypassed: self.params.bypass.value(),
        };

        let mut output = HostOutput {
            context,
            bridge: self.bridge.as_ref(),
            bars_started: 0,
        };
        if let Some(bridge) = &self.bridge {
            while let Some(phrase) = bridge.try_receive() {
                self.sequencer.offer(phrase, &mut output);
            }
            // Offline, the host waits for us: take every requested phrase
            // before playing, so a bounce has exactly the notes a real-time
            // pass with an instant worker would.
            if self.offline {
                // Only an offline request is sure to be answered (a real-time
                // one whose phrase is current never is); if the offline one
                // could not be queued this block, play on and ask next block.
                let asked_offline = self.requested.is_some_and(|(_, offline)| offline);
                while asked_offline
                    && self.sequencer.newest_phrase_id() < Some(self.last_request_id)
                {
                    // Blocking may allocate inside the channel; offline
                    // rendering has no real-time deadline, so that is allowed.
                    match nice_plug::util::permit_alloc(|| bridge.receive_within(OFFLINE_WAIT)) {
                        Some(phrase) => self.sequencer.offer(phrase, &mut output),
                        None => {
                            // Stuck: play on, and ask afresh next block
                            // rather than wait for this phrase again.
                            nice_plug::util::permit_alloc(|| {
                                nice_plug::nice_error!(
                                    "Latent Trio's worker did not answer in {OFFLINE_WAIT:?}; the bounce plays on"
                                )
                            });
                            self.requested = None;
                            break;
                        }
                    }
                }
            }
        }
        self.sequencer.process(&input, &mut output);
        // A morph glide moves on at bar lines; the phrase for its next step
        // is asked for now and takes over at the next change.
        let bars_started = output.bars_started;
        if bars_started > 0 {
            self.follow_morph(bars_started);
            self.request_if_changed();
        }
        if let Some(bridge) = &self.bridge {
            bridge.clock.publish(
                block_started,
                self.sequencer.seconds_to_next_change(),
                self.sequencer.next_change_bar(),
                f64::from(input.samples) / f64::from(self.sample_rate),
                input.meter.bar_quarters() * self.sequencer.seconds_per_quarter(),
            );
        }
        self.now_playing.publish(
            self.sequencer.playing_phrase_id(),
            self.sequencer.waiting_phrase_id(),
            self.sequencer.playhead(),
            input.tempo.unwrap_or(120.0),
            (input.meter.numerator, input.meter.denominator),
        );
        ProcessStatus::Normal
    }
}

/// Whether `saved` is a later major version than `ours` ("2.0.1" vs "1.4.0").
/// An unreadable version (very old states have none) counts as older.
fn is_newer_major_version(saved: &str, ours: &str) -> bool {
    let major = |version: &str| {
        version
            .split('.')
            .next()
            .and_then(|m| m.trim().parse::<u64>().ok())
    };
    matches!((major(saved), major(ours)), (Some(saved), Some(ours)) if saved > ours)
}

impl ClapPlugin for LatentTrio {
    const CLAP_ID: &'static str = "org.latent-trio.latent-trio";
    const CLAP_DESCRIPTION: Option<&'static str> =
        Some("Bar-synced drums, bass and melody from MusicVAE models");
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[
        ClapFeature::Instrument,
        ClapFeature::NoteEffect,
        ClapFeature::Stereo,
    ];
}

impl Vst3Plugin for LatentTrio {
    const VST3_CLASS_ID: [u8; 16] = *b"LatentTrioMVAE01";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] =
        &[Vst3SubCategory::Instrument, Vst3SubCategory::Generator];
}

#[cfg(test)]
mod tests {
    use super::is_newer_major_version;

    #[test]
    fn only_a_later_major_version_is_refused() {
        assert!(is_newer_major_version("1.0.0", "0.1.0"));
        assert!(!is_newer_major_version("0.9.0", "0.1.0"));
        assert!(!is_newer_major_version("", "0.1.0"));
        assert!(!is_newer_major_version("0.1.0", "0.1.0"));
    }
}

/// How many decodes this process has run, for benchmarks and tests that load
/// the bundle (a host never calls it): `which` 0-2 counts the model runs of
/// drums, bass and melody, 3-5 the immediate, preview and final decodes.
#[unsafe(no_mangle)]
pub extern "C" fn latent_trio_decode_count(which: u32) -> u64 {
    engine::worker::DECODE_COUNTS.get(which as usize)
}

nice_export_clap!(LatentTrio);
nice_export_vst3!(LatentTrio);
