//! WORKER THREAD ONLY: models, ONNX Runtime, decoding and latents.
//!
//! Nothing in here may run on the audio thread: it loads files, allocates and
//! calls into ONNX Runtime. The plugin's worker thread ([`worker`]) and the
//! CLI are its only callers.

pub mod latent;
pub mod manifest;
pub mod model;
pub mod random;
pub mod runtime;
pub mod tokens;
pub mod worker;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::knobs::KnobSnapshot;
use crate::midi_clip::{self, ClipError};
use crate::pattern::{Part, Phrase};
use crate::stored::{ClipLatent, StoredLatents};
use model::PartModel;
use runtime::{MODELS_ENV, Provider, ProviderChoice};

/// ONNX Runtime could not be loaded.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// No library file in any of the places searched.
    #[error(
        "ONNX Runtime was not found (looked for {}); reinstall the plugin with its bundle folder, or set LATENT_TRIO_ORT_LIB to a libonnxruntime file",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    LibraryNotFound {
        /// Every path tried.
        searched: Vec<PathBuf>,
    },
    /// A file was found but is not a usable ONNX Runtime.
    #[error("ONNX Runtime at {path} could not be used: {message}")]
    LibraryUnusable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// A model folder could not be used.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A file is missing or unreadable.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The manifest is not valid JSON of the expected shape.
    #[error("{path} is not a valid model manifest: {source}")]
    ManifestSyntax {
        /// The manifest.
        path: PathBuf,
        /// Where parsing stopped.
        source: serde_json::Error,
    },
    /// The manifest parses but describes something this version cannot play.
    #[error("{path}: {detail}")]
    ManifestContent {
        /// The manifest.
        path: PathBuf,
        /// What is wrong, in words.
        detail: String,
    },
    /// The latent axes file is missing pieces or has the wrong size.
    #[error("latent axes {path}: {detail}")]
    LatentAxes {
        /// The axes file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// ONNX Runtime refused a graph file (corrupt or not ONNX).
    #[error("{path} is not a usable ONNX model: {message}")]
    GraphUnloadable {
        /// The graph file.
        path: PathBuf,
        /// ONNX Runtime's message.
        message: String,
    },
    /// A graph's inputs or outputs differ from its manifest.
    #[error("{path} does not match its manifest: expected {expected}, found {found}")]
    GraphSignature {
        /// The graph file.
        path: PathBuf,
        /// The manifest's signature.
        expected: String,
        /// The graph's.
        found: String,
    },
    /// The model produced NaN or infinite logits.
    #[error("the model in {folder} produced invalid numbers")]
    NotFinite {
        /// The model folder.
        folder: PathBuf,
    },
    /// ONNX Runtime failed while decoding.
    #[error("decoding failed: {0}")]
    Inference(#[from] ort::Error),
}

/// A .mid clip could not become a part's starting latent.
#[derive(Debug, Error)]
pub enum ClipImportError {
    /// The part's model is not loaded, so nothing can encode the clip.
    #[error("the {part} model could not be loaded: {reason}")]
    NoModel {
        /// The part.
        part: &'static str,
        /// Why the model did not load.
        reason: String,
    },
    /// The file is not a usable clip.
    #[error(transparent)]
    Clip(#[from] ClipError),
    /// The encoder failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Result of model operations.
pub type ModelResult<T> = Result<T, ModelError>;

/// Folder name of the default model of each part.
pub fn default_model_folder_name(part: Part) -> String {
    format!("{}_2bar", part.name())
}

/// The models folder: `LATENT_TRIO_MODELS`, else the first resource folder
/// that has one.
pub fn models_folder() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(MODELS_ENV) {
        return Some(PathBuf::from(path));
    }
    runtime::resource_folders()
        .into_iter()
        .map(|folder| folder.join("models"))
        .find(|folder| folder.is_dir())
}

/// Every part's model, each loaded (or failed) on its own so that one broken
/// model never silences the others.
pub struct Engine {
    /// Per part, by [`Part::index`].
    pub parts: [Result<PartModel, ModelError>; 3],
    /// Time the last [`Engine::decode`] took.
    pub last_decode: Duration,
    /// Per part, the latent the last decode used (empty where the part's
    /// model did not load): what "store scene" keeps.
    pub last_latents: [Vec<f32>; 3],
}

impl Engine {
    /// Loads ONNX Runtime and the default model of every part from `models`.
    pub fn load(models: &Path, choice: ProviderChoice) -> Result<Engine, RuntimeError> {
        let runtime = runtime::runtime()?;
        let parts = Part::ALL.map(|part| {
            PartModel::load(
                runtime,
                &models.join(default_model_folder_name(part)),
                part,
                choice,
            )
        });
        Ok(Engine {
            parts,
            last_decode: Duration::ZERO,
            last_latents: Default::default(),
        })
    }

    /// Decodes every part that loaded into `phrase` (a part that failed gets
    /// no notes). Returns the first decode error, if any, after trying all.
    ///
    /// A part plays the A-B morph when `knobs.scenes_on` and both scenes hold
    /// a latent for it; otherwise its knobs move it from its imported clip,
    /// or from the seed's latent.
    pub fn decode(
        &mut self,
        knobs: &KnobSnapshot,
        stored: &StoredLatents,
        phrase: &mut Phrase,
    ) -> ModelResult<()> {
        let started = Instant::now();
        let mut first_error = None;
        for part in Part::ALL {
            let out = phrase.part_mut(part);
            out.clear();
            let Ok(model) = &mut self.parts[part.index()] else {
                self.last_latents[part.index()].clear();
                continue;
            };
            let part_knobs = knobs.part(part);
            let morph = knobs
                .scenes_on
                .then(|| stored.morph(part, knobs.morph, model.latent_size()))
                .flatten();
            let z = morph.unwrap_or_else(|| {
                let clip = stored.clip(part).map(|clip| clip.latent.as_slice());
                model.latent(knobs.seed, part_knobs, clip)
            });
            if let Err(error) = model.decode(&z, knobs.seed, part_knobs.temperature, out) {
                out.clear();
                first_error.get_or_insert(error);
            }
            self.last_latents[part.index()] = z;
        }
        self.last_decode = started.elapsed();
        first_error.map_or(Ok(()), Err)
    }

    /// Reads the .mid clip at `path` for `part` and encodes it: the latent
    /// the part then starts from (MIDI in).
    pub fn import_clip(&mut self, part: Part, path: &Path) -> Result<ClipLatent, ClipImportError> {
        let model =
            self.parts[part.index()]
                .as_mut()
                .map_err(|error| ClipImportError::NoModel {
                    part: part.name(),
                    reason: error.to_string(),
                })?;
        let clip = midi_clip::read_clip(path, part, model.vocabulary())?;
        Ok(ClipLatent {
            name: path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
            summary: clip.summary(),
            latent: model.encode(&clip.tokens)?,
        })
    }

    /// The provider the loaded models run on (the first loaded part's).
    pub fn provider(&self) -> Option<Provider> {
        self.parts.iter().flatten().map(|m| m.provider).next()
    }
}
