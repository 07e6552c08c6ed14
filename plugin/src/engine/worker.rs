//! The worker thread: answers every decode request from the audio thread with
//! a phrase, and publishes what it is doing for the GUI.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::thread::JoinHandle;

use atomic_float::AtomicF32;
use parking_lot::Mutex;

use super::runtime::{Provider, ProviderChoice};
use super::{Engine, RuntimeError};
use crate::bridge::WorkerSide;
use crate::pattern::Part;

/// What the engine is doing, for the GUI and the host's status line. Written
/// by the worker; read by the GUI and tests (never by the audio thread, which
/// has no use for it).
#[derive(Default)]
pub struct EngineStatus {
    state: AtomicU8,
    provider: AtomicU8,
    /// Milliseconds the last decode of all three parts took.
    pub last_decode_ms: AtomicF32,
    /// Phrases decoded since the plugin was created.
    pub decodes: AtomicU64,
    /// Per part: why it is silent, if it is (worker writes, GUI reads).
    part_problems: Mutex<[Option<String>; 3]>,
    /// Why nothing plays at all, or a note about the provider.
    message: Mutex<String>,
}

/// Where the engine is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineState {
    /// Waiting for the first request, or loading.
    Starting,
    /// Models loaded (see the per-part problems for any that did not).
    Ready,
    /// ONNX Runtime is missing or unusable: the plugin stays silent.
    NoRuntime,
}

impl EngineStatus {
    /// The current state.
    pub fn state(&self) -> EngineState {
        match self.state.load(Ordering::Acquire) {
            1 => EngineState::Ready,
            2 => EngineState::NoRuntime,
            _ => EngineState::Starting,
        }
    }

    /// The provider the models run on, once loaded.
    pub fn provider(&self) -> Option<Provider> {
        match self.provider.load(Ordering::Acquire) {
            1 => Some(Provider::Cpu),
            2 => Some(Provider::Cuda),
            3 => Some(Provider::DirectMl),
            _ => None,
        }
    }

    /// A sentence about the engine as a whole (empty when all is well).
    pub fn message(&self) -> String {
        self.message.lock().clone()
    }

    /// Why `part` is silent, if it is.
    pub fn part_problem(&self, part: Part) -> Option<String> {
        self.part_problems.lock()[part.index()].clone()
    }

    fn publish_engine(&self, engine: &Result<Engine, RuntimeError>) {
        match engine {
            Ok(engine) => {
                let mut problems = self.part_problems.lock();
                let mut notes = Vec::new();
                for part in Part::ALL {
                    problems[part.index()] = match &engine.parts[part.index()] {
                        Ok(model) => {
                            notes.extend(model.provider_note.clone());
                            None
                        }
                        Err(error) => {
                            nice_plug::nice_error!(
                                "Latent Trio's {} stays silent: {error}",
                                part.name()
                            );
                            Some(error.to_string())
                        }
                    };
                }
                notes.dedup();
                *self.message.lock() = notes.join("; ");
                self.provider.store(
                    match engine.provider() {
                        None => 0,
                        Some(Provider::Cpu) => 1,
                        Some(Provider::Cuda) => 2,
                        Some(Provider::DirectMl) => 3,
                    },
                    Ordering::Release,
                );
                self.state.store(1, Ordering::Release);
            }
            Err(error) => {
                nice_plug::nice_error!("Latent Trio stays silent: {error}");
                *self.message.lock() = error.to_string();
                self.provider.store(0, Ordering::Release);
                self.state.store(2, Ordering::Release);
            }
        }
    }
}

/// What the worker needs besides its side of the bridge.
pub struct WorkerSettings {
    /// The models folder, if one was found.
    pub models: Option<PathBuf>,
    /// Reads the musician's provider choice (a host parameter).
    pub provider_choice: Box<dyn Fn() -> ProviderChoice + Send>,
    /// Shared status.
    pub status: Arc<EngineStatus>,
}

/// Starts the worker. It loads the models on the first request (never while a
/// host is merely scanning plugins) and ends when the audio side is dropped.
pub fn spawn(side: WorkerSide, settings: WorkerSettings) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("latent-trio-worker".into())
        .spawn(move || run(side, settings))
}

fn run(side: WorkerSide, settings: WorkerSettings) {
    let mut engine: Option<(ProviderChoice, Result<Engine, RuntimeError>)> = None;
    while let Ok(mut request) = side.requests.recv() {
        // Knob sweeps queue many requests; only the newest matters.
        while let Ok(newer) = side.requests.try_recv() {
            request = newer;
        }
        let choice = (settings.provider_choice)();
        if engine.as_ref().is_none_or(|(loaded, _)| *loaded != choice) {
            let loaded = match &settings.models {
                Some(models) => Engine::load(models, choice),
                None => Err(RuntimeError::LibraryNotFound {
                    searched: Vec::new(),
                }),
            };
            if settings.models.is_none() {
                *settings.status.message.lock() =
                    "no models folder found next to the plugin; set LATENT_TRIO_MODELS".into();
                settings.status.state.store(2, Ordering::Release);
            } else {
                settings.status.publish_engine(&loaded);
            }
            engine = Some((choice, loaded));
        }
        let Ok(mut phrase) = side.spent.recv() else {
            return;
        };
        phrase.request_id = request.id;
        match engine.as_mut().map(|(_, e)| e) {
            Some(Ok(engine)) => {
                if let Err(error) = engine.decode(&request.knobs, &mut phrase) {
                    *settings.status.message.lock() = error.to_string();
                }
                settings
                    .status
                    .last_decode_ms
                    .store(engine.last_decode.as_secs_f32() * 1000.0, Ordering::Relaxed);
                settings.status.decodes.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                // Silent, but answered: an offline bounce waiting for this
                // phrase must not wait in vain.
                for part in Part::ALL {
                    phrase.part_mut(part).clear();
                }
            }
        }
        if side.phrases.send(phrase).is_err() {
            return;
        }
    }
}
