//! A headless CLAP host for Latent Trio's built bundle.
//!
//! It does what a DAW does with an instrument: loads the `.clap` file, scans
//! its factory, instantiates, activates at a sample rate and block size,
//! drives a simulated transport (tempo, meter, loops, jumps), automates
//! parameters, saves and loads state, and collects every note event the
//! plugin sends. The scenarios in `tests/` assert on those events.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use clack_extensions::gui::{
    GuiApiType, GuiConfiguration, GuiSize, HostGui, HostGuiImpl, PluginGui, Window,
};
use clack_extensions::params::{ParamInfoBuffer, PluginParams};
use clack_extensions::render::{PluginRender, RenderMode};
use clack_extensions::state::PluginState;
use clack_host::events::event_types::TransportFlags;
use clack_host::events::event_types::{NoteOffEvent, NoteOnEvent, ParamValueEvent, TransportEvent};
use clack_host::events::{EventFlags, EventHeader, Match};
use clack_host::prelude::*;
use clack_host::utils::{BeatTime, SecondsTime};

/// Workspace root (the tests crate lives in `tests/`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// Where `cargo xtask test` puts its debug test bundles (apart from the
/// release bundles in `target/bundled/`, which a user installs).
pub fn test_bundles() -> PathBuf {
    workspace().join("target/test-bundle/bundled")
}

/// The CLAP bundle the test command builds.
pub fn clap_bundle() -> PathBuf {
    test_bundles().join("Latent Trio.clap")
}

/// The models folder inside the test bundle.
pub fn bundled_models() -> PathBuf {
    test_bundles().join("Latent Trio.resources/models")
}

/// The plugin's CLAP id.
pub const PLUGIN_ID: &str = "org.latent-trio.latent-trio";

struct Shared {
    callback_requested: AtomicBool,
}

impl<'a> SharedHandler<'a> for Shared {
    fn request_restart(&self) {}
    fn request_process(&self) {}
    fn request_callback(&self) {
        self.callback_requested.store(true, Ordering::Release);
    }
}

// An editor window this host embeds stays the size the editor asks for.
impl HostGuiImpl for Shared {
    fn resize_hints_changed(&self) {}
    fn request_resize(&self, _new_size: GuiSize) -> Result<(), HostError> {
        Ok(())
    }
    fn request_show(&self) -> Result<(), HostError> {
        Ok(())
    }
    fn request_hide(&self) -> Result<(), HostError> {
        Ok(())
    }
    fn closed(&self, _was_destroyed: bool) {}
}

struct MainThread;
impl<'a> MainThreadHandler<'a> for MainThread {}

struct Handlers;
impl HostHandlers for Handlers {
    type Shared<'a> = Shared;
    type MainThread<'a> = MainThread;
    type AudioProcessor<'a> = ();

    fn declare_extensions(builder: &mut HostExtensions<Self>, _shared: &Self::Shared<'_>) {
        builder.register::<HostGui>();
    }
}

/// A note event the plugin sent, with its absolute sample time (samples
/// processed since the instance was created, never jumping back).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoteEvent {
    /// Absolute sample.
    pub sample: u64,
    /// Whether it starts a note.
    pub on: bool,
    /// 0-based MIDI channel.
    pub channel: u16,
    /// MIDI key.
    pub key: u16,
    /// Velocity 0..1 (0 for note-offs).
    pub velocity: f64,
    /// Song position of the event in quarter notes, per the transport the
    /// host reported for its block.
    pub song_quarters: f64,
    /// Whether the event's sample is the first sample at or after a 16th step
    /// of the transport (the plugin's timing contract).
    pub on_grid: bool,
    /// The 16th step (song position times 4) the event belongs to, if on grid.
    pub step: Option<i64>,
    /// How far the event lies from the nearest 16th of the song, in 16ths
    /// (humanize and swing move notes up to a third of one).
    pub from_grid: f64,
}

/// How a host fills in the transport of each block: every known host
/// behaviour the plugin has to play through, note for note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostProfile {
    /// Bar start and number exactly right, blocks split at the loop end
    /// (clap-validator's and most hosts' behaviour).
    Exact,
    /// Ardour 7 as a plugin sees it through VST3 (measured in 7.3): the bar
    /// start (`barPositionMusic`) is `bars * 4` quarters with bars counted
    /// from 1 (4.0 at the song start), 4 quarters per bar whatever the meter;
    /// VST3 has no bar number, so the framework counts it from the position;
    /// positions are rounded to 1/1920 beat. Ardour only began filling
    /// `barPositionMusic` in 6.3 (Ardour/ardour#586).
    Ardour7,
    /// No beats timeline: the position comes in seconds only and the bar
    /// fields stay 0 (a CLAP host without `HAS_BEATS_TIMELINE`, and hosts
    /// that never fill the bar fields; sjaehn/BShapr#3 saw Ardour 5's stay 0).
    NoBeatsTimeline,
    /// Pre-roll and count-in: play starts a bar before the song start, with
    /// negative positions and bar -1 (Logic's pre-roll, iPlug2/iPlug2#1094;
    /// Cubase projects that start before bar 1, AuburnSounds/Dplug#698).
    PreRoll,
    /// Loops without block splitting: the block that crosses the loop end runs
    /// on past it, and only the next block starts again at the loop start
    /// (the loop range is in the transport).
    LoopInsideBlock,
    /// Tempo ramps inside blocks: the tempo changes sample by sample
    /// (CLAP `tempo_inc`), positions follow the ramp exactly.
    TempoRampInsideBlock,
    /// No song position in the first block after play starts, only from the
    /// second on (FL Studio and Reaper did this through VST2,
    /// surge-synthesizer/surge#2836).
    FirstBlockWithoutPosition,
}

impl HostProfile {
    /// Every profile.
    pub const ALL: [HostProfile; 7] = [
        HostProfile::Exact,
        HostProfile::Ardour7,
        HostProfile::NoBeatsTimeline,
        HostProfile::PreRoll,
        HostProfile::LoopInsideBlock,
        HostProfile::TempoRampInsideBlock,
        HostProfile::FirstBlockWithoutPosition,
    ];
}

/// The simulated transport.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Song {
    /// Playing or stopped.
    pub playing: bool,
    /// Tempo in BPM.
    pub tempo: f64,
    /// Time signature.
    pub meter: (u16, u16),
    /// Position in quarter notes.
    pub position: f64,
    /// Start of the current bar, in quarters.
    pub bar_start: f64,
    /// Number of the current bar (0 = first).
    pub bar_number: i32,
    /// Active loop (start, end) in quarters.
    pub looping: Option<(f64, f64)>,
    /// Tempo change per sample, in BPM (a ramp).
    pub tempo_inc: f64,
    /// How the host reports all this.
    pub profile: HostProfile,
}

impl Default for Song {
    fn default() -> Self {
        Song {
            playing: true,
            tempo: 120.0,
            meter: (4, 4),
            position: 0.0,
            bar_start: 0.0,
            bar_number: 0,
            looping: None,
            tempo_inc: 0.0,
            profile: HostProfile::Exact,
        }
    }
}

impl Song {
    /// Length of a bar in quarters.
    pub fn bar_quarters(&self) -> f64 {
        f64::from(self.meter.0) * 4.0 / f64::from(self.meter.1)
    }

    /// Moves to `position` (a locate), on a fresh bar grid from 0 in the
    /// current meter.
    pub fn locate(&mut self, position: f64) {
        self.position = position;
        let bar = (position / self.bar_quarters()).floor();
        self.bar_start = bar * self.bar_quarters();
        self.bar_number = bar as i32;
    }

    /// Quarters that pass in `samples` samples at `sample_rate`, following
    /// the tempo ramp.
    pub fn quarters_in(&self, samples: f64, sample_rate: f64) -> f64 {
        (self.tempo * samples + 0.5 * self.tempo_inc * samples * samples) / 60.0 / sample_rate
    }

    /// Song position `samples` into a block that starts now, with a loop that
    /// the block runs through wrapped back to its start.
    pub fn position_after(&self, samples: f64, sample_rate: f64) -> f64 {
        let position = self.position + self.quarters_in(samples, sample_rate);
        match self.looping {
            Some((start, end)) if self.position < end && position >= end - 1e-9 => {
                start + (position - end)
            }
            _ => position,
        }
    }

    fn advance(&mut self, quarters: f64) {
        self.position += quarters;
        if self.position > self.bar_start + 64.0 * self.bar_quarters() {
            // A leap of many bars (an absurd tempo): count them at once.
            self.locate(self.position);
        }
        while self.position >= self.bar_start + self.bar_quarters() - 1e-9 {
            self.bar_start += self.bar_quarters();
            self.bar_number += 1;
        }
    }

    fn event(&self) -> TransportEvent {
        let mut flags = TransportFlags::HAS_TEMPO
            | TransportFlags::HAS_BEATS_TIMELINE
            | TransportFlags::HAS_SECONDS_TIMELINE
            | TransportFlags::HAS_TIME_SIGNATURE;
        if self.playing {
            flags |= TransportFlags::IS_PLAYING;
        }
        let (loop_start, loop_end) = self.looping.unwrap_or((0.0, 0.0));
        if self.looping.is_some() {
            flags |= TransportFlags::IS_LOOP_ACTIVE;
        }
        let seconds = |quarters: f64| SecondsTime::from_float(quarters * 60.0 / self.tempo);
        let (mut position, mut bar_start, mut bar_number) =
            (self.position, self.bar_start, self.bar_number);
        match self.profile {
            HostProfile::Ardour7 => {
                position = (position * 1920.0).round() / 1920.0;
                // VST3 carries no bar number: the plugin framework counts it
                // from the position, as nice-plug does.
                bar_start = f64::from(bar_number + 1) * 4.0;
                bar_number = (position / self.bar_quarters()).floor() as i32;
            }
            HostProfile::NoBeatsTimeline => {
                flags.remove(TransportFlags::HAS_BEATS_TIMELINE);
                bar_start = 0.0;
                bar_number = 0;
            }
            HostProfile::PreRoll if self.position < 0.0 => {
                flags |= TransportFlags::IS_WITHIN_PRE_ROLL;
            }
            _ => {}
        }
        TransportEvent {
            header: EventHeader::new_core(0, EventFlags::empty()),
            flags,
            song_pos_beats: BeatTime::from_float(position),
            song_pos_seconds: seconds(position),
            tempo: self.tempo,
            tempo_inc: self.tempo_inc,
            loop_start_beats: BeatTime::from_float(loop_start),
            loop_end_beats: BeatTime::from_float(loop_end),
            loop_start_seconds: seconds(loop_start),
            loop_end_seconds: seconds(loop_end),
            bar_start: BeatTime::from_float(bar_start),
            bar_number,
            time_signature_numerator: self.meter.0,
            time_signature_denominator: self.meter.1,
        }
    }
}

/// A parameter as the host sees it.
#[derive(Debug, Clone)]
pub struct Param {
    /// CLAP id.
    pub id: ClapId,
    /// Display name, e.g. "Drums Latent 1".
    pub name: String,
    /// Group path, e.g. "Drums".
    pub module: String,
    /// Plain range.
    pub min: f64,
    /// Plain range.
    pub max: f64,
    /// Default plain value.
    pub default: f64,
}

/// The loaded bundle.
pub struct Bundle {
    entry: PluginEntry,
    info: HostInfo,
    /// The same library, for the decode counters it exports.
    library: libloading::Library,
}

/// A count the plugin keeps of its worker's decodes (process-wide, every
/// instance together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeCount {
    /// How often a part's model ran.
    PartRuns(Part),
    /// Decodes run at once (offline bounces, a stopped transport).
    Immediate,
    /// Decodes for the open window's "Next" view.
    Preview,
    /// Decodes just before a change point: what is heard.
    Final,
    /// The rest of a long phrase, decoded at once after its final decode.
    Rest,
}

/// One of the plugin's three parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Drums.
    Drums,
    /// Bass.
    Bass,
    /// Melody.
    Melody,
}

/// CPU time the plugin's worker thread has used, read from the thread itself
/// (Linux `/proc/self/task/<tid>/schedstat`); `None` if no worker runs.
pub fn worker_cpu_time() -> Option<std::time::Duration> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    tasks.flatten().find_map(|task| {
        let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
        if name.trim() != "trio-worker" {
            return None;
        }
        let schedstat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        let nanos = schedstat.split_whitespace().next()?.parse().ok()?;
        Some(std::time::Duration::from_nanos(nanos))
    })
}

impl Bundle {
    /// Loads a `.clap` file.
    pub fn load(path: &Path) -> Result<Bundle, String> {
        if !path.is_file() {
            return Err(format!(
                "{} does not exist; run `cargo xtask bundle latent_trio`",
                path.display()
            ));
        }
        // SAFETY: loading a plugin runs its code; this is the plugin under test.
        let entry = unsafe { PluginEntry::load(path) }
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
        let info = HostInfo::new(
            "Latent Trio headless host",
            "Latent Trio developers",
            "",
            "0.1.0",
        )
        .map_err(|e| e.to_string())?;
        // SAFETY: the same file, already loaded: this only takes a reference.
        let library = unsafe { libloading::Library::new(path) }
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        Ok(Bundle {
            entry,
            info,
            library,
        })
    }

    /// The plugin's count of `which` decodes so far.
    pub fn decode_count(&self, which: DecodeCount) -> u64 {
        let index = match which {
            DecodeCount::PartRuns(Part::Drums) => 0,
            DecodeCount::PartRuns(Part::Bass) => 1,
            DecodeCount::PartRuns(Part::Melody) => 2,
            DecodeCount::Immediate => 3,
            DecodeCount::Preview => 4,
            DecodeCount::Final => 5,
            DecodeCount::Rest => 6,
        };
        // SAFETY: the plugin exports this function with this signature.
        unsafe {
            let count: libloading::Symbol<extern "C" fn(u32) -> u64> = self
                .library
                .get(b"latent_trio_decode_count\0")
                .expect("the bundle exports its decode counts");
            count(index)
        }
    }

    /// (id, name) of every plugin in the factory.
    pub fn plugins(&self) -> Vec<(String, String)> {
        let factory = self.entry.get_plugin_factory().expect("a plugin factory");
        factory
            .plugin_descriptors()
            .map(|d| {
                let text = |s: Option<&std::ffi::CStr>| {
                    s.map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                (text(d.id()), text(d.name()))
            })
            .collect()
    }

    /// Creates an instance of Latent Trio.
    /// An instance in offline (render) mode, active at 48 kHz with blocks of
    /// up to `max_frames`: a bounce, where the plugin waits for its worker,
    /// so every run plays exactly the same notes.
    pub fn instantiate_offline(&self, max_frames: u32) -> Result<Instance, String> {
        let mut instance = self.instantiate()?;
        instance.set_offline(true)?;
        instance.activate(48_000.0, max_frames);
        Ok(instance)
    }

    pub fn instantiate(&self) -> Result<Instance, String> {
        let id = CString::new(PLUGIN_ID).expect("no NUL");
        let instance = PluginInstance::<Handlers>::new(
            |_| Shared {
                callback_requested: AtomicBool::new(false),
            },
            |_| MainThread,
            &self.entry,
            &id,
            &self.info,
        )
        .map_err(|e| format!("instantiation failed: {e}"))?;
        let mut instance = Instance {
            instance,
            processor: None,
            params: Vec::new(),
            sample_rate: 48_000.0,
            max_frames: 512,
            wall: 0,
            song: Song::default(),
            pending_params: Vec::new(),
            pending_keys: Vec::new(),
            output: EventBuffer::with_capacity(4096),
            events: Vec::new(),
            last_process: std::time::Duration::ZERO,
            played_last_block: false,
        };
        instance.params = instance.scan_params();
        Ok(instance)
    }
}

/// One plugin instance with its transport and everything it has played.
pub struct Instance {
    instance: PluginInstance<Handlers>,
    processor: Option<StartedPluginAudioProcessor<Handlers>>,
    /// Every parameter, in the plugin's order.
    pub params: Vec<Param>,
    sample_rate: f64,
    max_frames: u32,
    /// Samples processed so far (the time base of [`NoteEvent::sample`]).
    pub wall: u64,
    /// The transport.
    pub song: Song,
    pending_params: Vec<(ClapId, f64)>,
    /// Keys pressed or let go on the note input, for the next block.
    pending_keys: Vec<(u8, bool)>,
    output: EventBuffer,
    /// Every note event so far.
    pub events: Vec<NoteEvent>,
    /// Wall-clock time of the plugin's last `process()` call.
    pub last_process: std::time::Duration,
    /// Whether the transport was playing in the last block.
    played_last_block: bool,
}

impl Instance {
    fn scan_params(&mut self) -> Vec<Param> {
        let handle = self.instance.plugin_handle();
        let Some(params) = handle.get_extension::<PluginParams>() else {
            return Vec::new();
        };
        let mut buffer = ParamInfoBuffer::new();
        (0..params.count(&handle))
            .filter_map(|index| {
                params
                    .get_info(&handle, index, &mut buffer)
                    .map(|info| Param {
                        id: info.id,
                        name: String::from_utf8_lossy(info.name).into_owned(),
                        module: String::from_utf8_lossy(info.module).into_owned(),
                        min: info.min_value,
                        max: info.max_value,
                        default: info.default_value,
                    })
            })
            .collect()
    }

    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> &Param {
        self.params
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no parameter {name:?}"))
    }

    /// The host's current value of a parameter.
    pub fn param_value(&mut self, name: &str) -> f64 {
        let id = self.param(name).id;
        let handle = self.instance.plugin_handle();
        let params = handle.get_extension::<PluginParams>().expect("params");
        params.get_value(&handle, id).expect("a value")
    }

    /// The plugin's text for `value` of parameter `id`.
    pub fn value_text(&mut self, id: ClapId, value: f64) -> Option<String> {
        let handle = self.instance.plugin_handle();
        let params = handle.get_extension::<PluginParams>()?;
        let mut buffer = [0u8; 256];
        let text = params.value_to_text(&handle, id, value, &mut buffer).ok()?;
        Some(String::from_utf8_lossy(text).into_owned())
    }

    /// The value the plugin reads from `text` for parameter `id`.
    pub fn text_value(&mut self, id: ClapId, text: &str) -> Option<f64> {
        let handle = self.instance.plugin_handle();
        let params = handle.get_extension::<PluginParams>()?;
        let text = CString::new(text).ok()?;
        params.text_to_value(&handle, id, &text)
    }

    /// Presses (`down`) or lets go of MIDI key `key` on the plugin's note
    /// input, at the start of the next block.
    pub fn key(&mut self, key: u8, down: bool) {
        self.pending_keys.push((key, down));
    }

    /// Queues a parameter change (plain value) for the start of the next block.
    pub fn set(&mut self, name: &str, value: f64) {
        let id = self.param(name).id;
        self.pending_params.push((id, value));
    }

    /// Switches offline (render) or real-time processing; takes effect at the
    /// next activation.
    pub fn set_offline(&mut self, offline: bool) -> Result<(), String> {
        let handle = self.instance.plugin_handle();
        let render = handle
            .get_extension::<PluginRender>()
            .ok_or("no render extension")?;
        let mode = if offline {
            RenderMode::Offline
        } else {
            RenderMode::Realtime
        };
        render
            .set(&handle, mode)
            .map_err(|_| "render mode refused".to_string())
    }

    /// Activates at `sample_rate` with blocks of at most `max_frames`.
    pub fn activate(&mut self, sample_rate: f64, max_frames: u32) {
        self.deactivate();
        let configuration = PluginAudioConfiguration {
            sample_rate,
            min_frames_count: 1,
            max_frames_count: max_frames,
        };
        let stopped = self
            .instance
            .activate(|_, _| (), configuration)
            .expect("activation succeeds");
        self.processor = Some(
            stopped
                .start_processing()
                .map_err(|_| "start_processing failed")
                .expect("starts"),
        );
        self.sample_rate = sample_rate;
        self.max_frames = max_frames;
    }

    /// Deactivates (if active).
    pub fn deactivate(&mut self) {
        if let Some(processor) = self.processor.take() {
            let stopped = processor.stop_processing();
            self.instance.deactivate(stopped);
        }
        self.run_main_thread_callbacks();
    }

    fn run_main_thread_callbacks(&mut self) {
        let requested = self.instance.access_shared_handler(|shared: &Shared| {
            shared.callback_requested.swap(false, Ordering::AcqRel)
        });
        if requested {
            self.instance.call_on_main_thread_callback();
        }
    }

    /// Processes one block of `frames` samples at the current transport, then
    /// advances the transport (a stopped transport stays put).
    pub fn block(&mut self, frames: u32) {
        assert!(
            frames >= 1 && frames <= self.max_frames,
            "block of {frames} frames"
        );
        let song = self.song;
        let mut transport = song.event();
        if song.profile == HostProfile::FirstBlockWithoutPosition
            && song.playing
            && !self.played_last_block
        {
            transport
                .flags
                .remove(TransportFlags::HAS_BEATS_TIMELINE | TransportFlags::HAS_SECONDS_TIMELINE);
        }
        self.played_last_block = song.playing;
        // A ramp's notes are checked to within a sample: the plugin cannot see
        // the ramp inside a block (its framework passes no tempo_inc). Ardour
        // rounds the positions it reports to 1/1920 beat: its notes are
        // checked to within that rounding.
        let slack = match (song.tempo_inc != 0.0, song.profile) {
            (true, _) => 1.0,
            (false, HostProfile::Ardour7) => self.sample_rate * 60.0 / song.tempo / 3840.0 + 1e-3,
            _ => 1e-3,
        };
        let mut input =
            EventBuffer::with_capacity(self.pending_params.len() + self.pending_keys.len());
        for (id, value) in self.pending_params.drain(..) {
            input.push(&ParamValueEvent::new(0, id, Pckn::match_all(), value));
        }
        for (key, down) in self.pending_keys.drain(..) {
            let pckn = Pckn::new(0u16, 0u16, u16::from(key), Match::All);
            if down {
                input.push(&NoteOnEvent::new(0, pckn, 0.8));
            } else {
                input.push(&NoteOffEvent::new(0, pckn, 0.0));
            }
        }
        let mut left = vec![0.0f32; frames as usize];
        let mut right = vec![0.0f32; frames as usize];
        let mut ports = AudioPorts::with_capacity(2, 1);
        let mut outputs = ports.with_output_buffers([AudioPortBuffer {
            latency: 0,
            channels: AudioPortBufferType::f32_output_only(
                [left.as_mut_slice(), right.as_mut_slice()].into_iter(),
            ),
        }]);
        self.output.clear();
        let processor = self.processor.as_mut().expect("activated");
        let started = std::time::Instant::now();
        processor
            .process(
                &InputAudioBuffers::empty(),
                &mut outputs,
                &input.as_input(),
                &mut self.output.as_output(),
                Some(self.wall),
                Some(&transport),
            )
            .expect("process succeeds");
        self.last_process = started.elapsed();
        assert!(
            left.iter().chain(&right).all(|&s| s == 0.0),
            "the audio output stays silent"
        );
        let mut last_time = 0;
        for event in self.output.iter() {
            let (on, pckn, velocity, time) = if let Some(e) = event.as_event::<NoteOnEvent>() {
                (true, e.pckn(), e.velocity(), e.header().time())
            } else if let Some(e) = event.as_event::<NoteOffEvent>() {
                (false, e.pckn(), e.velocity(), e.header().time())
            } else {
                continue;
            };
            assert!(time < frames, "event at {time} outside a block of {frames}");
            assert!(time >= last_time, "events out of order");
            last_time = time;
            // The event's sample is on the grid if a 16th step lies in
            // (time - 1, time] samples after the block start, where the song
            // is as the host plays it (ramps, loops wrapping inside the block).
            // (Tolerance: a thousandth of a sample, for the fixed-point
            // positions CLAP carries.)
            let t = f64::from(time);
            let high = song.position_after(t + slack, self.sample_rate);
            let mut low = song.position_after(t - 1.0 - slack + 2e-3, self.sample_rate);
            if low > high {
                // The loop wrapped in between: its first step counts.
                low = song.looping.map_or(high, |(start, _)| start) - 1e-9;
            }
            let step = (high * 4.0).floor();
            let on_grid = song.playing && step / 4.0 > low;
            let sixteenths = song.position_after(t, self.sample_rate) * 4.0;
            self.events.push(NoteEvent {
                sample: self.wall + u64::from(time),
                on,
                channel: pckn.channel.into_specific().unwrap_or(u16::MAX),
                key: pckn.key.into_specific().unwrap_or(u16::MAX),
                velocity,
                song_quarters: song.position_after(t, self.sample_rate),
                on_grid,
                step: on_grid.then_some(step as i64),
                from_grid: if on_grid {
                    0.0
                } else {
                    (sixteenths - sixteenths.round()).abs()
                },
            });
        }
        self.wall += u64::from(frames);
        if song.playing {
            let samples = f64::from(frames);
            self.song
                .advance(song.quarters_in(samples, self.sample_rate));
            self.song.tempo += song.tempo_inc * samples;
            if let (HostProfile::LoopInsideBlock, Some((start, end))) = (song.profile, song.looping)
                && song.position < end
                && self.song.position >= end - 1e-9
            {
                self.song.locate(start + (self.song.position - end));
            }
        }
        self.run_main_thread_callbacks();
    }

    /// Plays `samples` samples in blocks of `block` (the last one shorter),
    /// splitting blocks at the loop end the way DAWs do.
    pub fn play(&mut self, samples: u64, block: u32) {
        let mut left = samples;
        while left > 0 {
            let mut frames = left.min(u64::from(block)) as u32;
            let splits_at_loop_end = self.song.profile != HostProfile::LoopInsideBlock;
            if let (true, true, Some((start, end))) =
                (self.song.playing, splits_at_loop_end, self.song.looping)
            {
                let spq = self.sample_rate * 60.0 / self.song.tempo;
                let to_end = ((end - self.song.position) * spq).round();
                if to_end >= 1.0 && to_end < f64::from(frames) {
                    frames = to_end as u32;
                }
                self.block(frames);
                if self.song.position >= end - 1e-9 {
                    self.song.locate(start);
                }
            } else {
                self.block(frames);
            }
            left -= u64::from(frames);
        }
    }

    /// Like [`Instance::play`], but in real time: after each block the host
    /// sleeps until that block's audio would have played, as a DAW's audio
    /// callback does. `each_block` runs before every block (to automate).
    pub fn play_realtime(
        &mut self,
        samples: u64,
        block: u32,
        mut each_block: impl FnMut(&mut Instance, f64),
    ) {
        let started = std::time::Instant::now();
        let mut played = 0u64;
        while played < samples {
            let frames = (samples - played).min(u64::from(block)) as u32;
            let seconds = played as f64 / self.sample_rate;
            each_block(self, seconds);
            self.block(frames);
            played += u64::from(frames);
            let due = std::time::Duration::from_secs_f64(played as f64 / self.sample_rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }

    /// Plays whole bars of the current meter.
    pub fn play_bars(&mut self, bars: f64, block: u32) {
        let samples = bars * self.song.bar_quarters() * self.sample_rate * 60.0 / self.song.tempo;
        self.play(samples.round() as u64, block);
    }

    /// Real time only: plays from bar 0 until the first note sounds (the
    /// worker has loaded the models and decoded), then stops and rewinds.
    /// Returns false if nothing sounded within `seconds` of wall-clock time.
    pub fn warm_up(&mut self, seconds: f64) -> bool {
        let started = std::time::Instant::now();
        let before = self.events.len();
        self.song = Song::default();
        while self.events.len() == before {
            if started.elapsed().as_secs_f64() > seconds {
                return false;
            }
            self.play_bars(1.0, self.max_frames.min(512));
            self.song.locate(0.0);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.song.playing = false;
        self.block(self.max_frames.min(64));
        self.song = Song::default();
        true
    }

    /// Saves the plugin's state.
    /// Opens the plugin's editor embedded in the X11 window `parent` at
    /// `scale` (1.0 = 100 %); returns the editor's size in pixels.
    ///
    /// # Safety
    ///
    /// `parent` must stay a valid X11 window until the instance is dropped.
    pub unsafe fn open_editor(&mut self, parent: u64, scale: f64) -> Result<(u32, u32), String> {
        let handle = self.instance.plugin_handle();
        let gui = handle
            .get_extension::<PluginGui>()
            .ok_or("the plugin has no editor")?;
        let configuration = GuiConfiguration {
            api_type: GuiApiType::X11,
            is_floating: false,
        };
        if !gui.is_api_supported(&handle, configuration) {
            return Err("the editor does not support embedding in X11".into());
        }
        gui.create(&handle, configuration)
            .map_err(|e| format!("create: {e:?}"))?;
        // A host may not support scaling; the editor then stays at 100 %.
        let _ = gui.set_scale(&handle, scale);
        let size = gui.get_size(&handle).ok_or("the editor has no size")?;
        // SAFETY: the caller keeps `parent` alive.
        unsafe { gui.set_parent(&handle, Window::from_x11_handle(parent as _)) }
            .map_err(|e| format!("set_parent: {e:?}"))?;
        gui.show(&handle).map_err(|e| format!("show: {e:?}"))?;
        Ok((size.width, size.height))
    }

    /// Closes the editor opened by [`Instance::open_editor`].
    pub fn close_editor(&mut self) {
        let handle = self.instance.plugin_handle();
        if let Some(gui) = handle.get_extension::<PluginGui>() {
            gui.destroy(&handle);
        }
    }

    pub fn save_state(&mut self) -> Vec<u8> {
        let handle = self.instance.plugin_handle();
        let state = handle
            .get_extension::<PluginState>()
            .expect("state extension");
        let mut bytes = Vec::new();
        state.save(&handle, &mut bytes).expect("state saves");
        bytes
    }

    /// Loads a state; `Err` when the plugin refuses it.
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<(), String> {
        let handle = self.instance.plugin_handle();
        let state = handle
            .get_extension::<PluginState>()
            .expect("state extension");
        let mut reader = bytes;
        state
            .load(&handle, &mut reader)
            .map_err(|e| format!("{e:?}"))
    }

    /// Stops the transport (every note ends), checks that no note was left
    /// hanging, and returns every note-on as (sample, channel, key).
    pub fn stop_and_note_ons(&mut self) -> Vec<(u64, u16, u16)> {
        self.song.playing = false;
        self.block(64);
        check_balanced(&self.events).expect("every note ends");
        self.events
            .iter()
            .filter(|e| e.on)
            .map(|e| (e.sample, e.channel, e.key))
            .collect()
    }

    /// Note events since index `from`.
    pub fn events_since(&self, from: usize) -> &[NoteEvent] {
        &self.events[from..]
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.deactivate();
    }
}

/// (song step, channel, key) of note-ons: what two renderings of the same
/// music share whatever their tempo and block sizes.
pub type Onsets = std::collections::BTreeSet<(i64, u16, u16)>;

/// The note-ons `latent-trio render` (the debug CLI, with the test bundle's
/// models) writes for the default knobs, `seed`, `bars` and `meter`.
pub fn cli_onsets(seed: u32, bars: u32, meter: (u16, u16)) -> Onsets {
    cli_onsets_with(seed, bars, meter, &[])
}

/// The note-ons of `bars` (counted in 4/4 bars from the song start), moved
/// to start at step 0.
pub fn in_bars(onsets: &Onsets, bars: std::ops::Range<i64>) -> Onsets {
    onsets
        .iter()
        .filter(|onset| bars.contains(&(onset.0 / 16)))
        .map(|&(step, channel, key)| (step - bars.start * 16, channel, key))
        .collect()
}

impl Instance {
    /// Stops the transport and gives every note-on since the instance was
    /// created by 16th step, at 120 BPM and 48 kHz (the offline default).
    pub fn stop_and_onsets(&mut self) -> Onsets {
        const SAMPLES_PER_STEP: u64 = 6_000;
        self.stop_and_note_ons()
            .iter()
            .map(|&(sample, channel, key)| ((sample / SAMPLES_PER_STEP) as i64, channel, key))
            .collect()
    }
}

/// [`cli_onsets`] with `extra` arguments for `render` (e.g. `--chords`).
pub fn cli_onsets_with(seed: u32, bars: u32, meter: (u16, u16), extra: &[&str]) -> Onsets {
    cli_note_ons(seed, bars, meter, extra)
        .into_iter()
        // The CLI writes 480 ticks a quarter: 120 a 16th.
        .map(|(tick, channel, key, _)| (i64::from(tick / 120), channel, key))
        .collect()
}

/// Every note-on `latent-trio render` (the debug CLI, with the test
/// bundle's models) writes with `extra` arguments: (tick at 480 a quarter,
/// 0-based channel, key, velocity), in time order, the chords track left out.
pub fn cli_note_ons(
    seed: u32,
    bars: u32,
    meter: (u16, u16),
    extra: &[&str],
) -> Vec<(u32, u16, u16, u8)> {
    let dir = std::env::temp_dir().join(format!(
        "latent-trio-render-{}-{seed}-{bars}-{}-{}-{}",
        std::process::id(),
        meter.0,
        meter.1,
        extra.len()
    ));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let out = dir.join("render.mid");
    let status = std::process::Command::new(workspace().join("target/debug/latent-trio"))
        .arg("--models")
        .arg(bundled_models())
        .args([
            "render",
            "--bars",
            &bars.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args(["--meter", &format!("{}/{}", meter.0, meter.1)])
        .args(extra)
        .arg("--out")
        .arg(&out)
        .status()
        .expect("the CLI runs");
    assert!(status.success(), "the CLI renders");
    let bytes = std::fs::read(&out).expect("the CLI wrote its file");
    let _ = std::fs::remove_dir_all(&dir);
    let smf = midly::Smf::parse(&bytes).expect("a MIDI file");
    let mut notes = Vec::new();
    // The chords bass and melody followed are the file's, not the plugin's.
    let is_chords = |track: &[midly::TrackEvent<'_>]| {
        track.iter().any(|event| {
            matches!(
                event.kind,
                midly::TrackEventKind::Meta(midly::MetaMessage::TrackName(b"Chords"))
            )
        })
    };
    for track in smf.tracks.iter().filter(|track| !is_chords(track)) {
        let mut tick = 0u32;
        for event in track {
            tick += event.delta.as_int();
            if let midly::TrackEventKind::Midi {
                channel,
                message: midly::MidiMessage::NoteOn { key, vel },
            } = event.kind
                && vel > 0
            {
                notes.push((
                    tick,
                    u16::from(channel.as_int()),
                    u16::from(key.as_int()),
                    vel.as_int(),
                ));
            }
        }
    }
    notes.sort_unstable();
    notes
}

/// A saved CLAP state as JSON (nice-plug writes an 8-byte little-endian
/// length, then JSON).
pub fn state_json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(&bytes[8..]).expect("JSON state")
}

/// A CLAP state from its JSON, as nice-plug writes one.
pub fn state_bytes(json: &serde_json::Value) -> Vec<u8> {
    let text = serde_json::to_vec(json).expect("JSON");
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend(text);
    bytes
}

/// The stored latents of a state's JSON (nice-plug keeps them as a JSON
/// string in the field `stored-latents`).
pub fn stored_latents(state: &serde_json::Value) -> serde_json::Value {
    let text = state["fields"]["stored-latents"]
        .as_str()
        .expect("stored latents");
    serde_json::from_str(text).expect("stored latents JSON")
}

/// Replaces the stored latents of a state's JSON.
pub fn set_stored_latents(state: &mut serde_json::Value, stored: &serde_json::Value) {
    state["fields"]["stored-latents"] = stored.to_string().into();
}

/// What a change at `line` should sound like: the notes of `before` up to
/// the line and those of `after` from it (each a list of timed notes whose
/// first field is the time, sorted by it).
pub fn switched_at<T: Copy>(
    before: &[(u64, T, T)],
    after: &[(u64, T, T)],
    line: u64,
) -> Vec<(u64, T, T)> {
    before
        .iter()
        .filter(|e| e.0 < line)
        .chain(after.iter().filter(|e| e.0 >= line))
        .copied()
        .collect()
}

/// A small reproducible random source for generated scenarios.
pub struct Chaos(pub u64);

impl Chaos {
    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.bits() % n
    }

    /// A number in `0.0..1.0`.
    pub fn unit(&mut self) -> f64 {
        (self.bits() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Checks that every note-on has exactly one later note-off on the same
/// channel and key, and that nothing is left sounding. Returns the number of
/// notes, or a description of the first problem.
pub fn check_balanced(events: &[NoteEvent]) -> Result<usize, String> {
    let mut sounding: Vec<(u16, u16, u64)> = Vec::new();
    let mut notes = 0;
    for event in events {
        let index = sounding
            .iter()
            .position(|&(c, k, _)| c == event.channel && k == event.key);
        match (event.on, index) {
            (true, None) => {
                sounding.push((event.channel, event.key, event.sample));
                notes += 1;
            }
            (true, Some(_)) => {
                return Err(format!(
                    "key {} on channel {} struck again while sounding at sample {}",
                    event.key,
                    event.channel + 1,
                    event.sample
                ));
            }
            (false, Some(index)) => {
                sounding.remove(index);
            }
            (false, None) => {
                return Err(format!(
                    "note-off for silent key {} at sample {}",
                    event.key, event.sample
                ));
            }
        }
    }
    if let Some((channel, key, sample)) = sounding.first() {
        return Err(format!(
            "{} stuck notes, the first key {key} on channel {} from sample {sample}",
            sounding.len(),
            channel + 1
        ));
    }
    Ok(notes)
}
