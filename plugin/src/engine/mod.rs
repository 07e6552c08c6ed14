//! WORKER THREAD ONLY: models, ONNX Runtime, decoding and latents.
//!
//! Nothing in here may run on the audio thread: it loads files, allocates and
//! calls into ONNX Runtime. The plugin's worker thread ([`worker`]) and the
//! CLI are its only callers.

pub mod humanize;
pub mod latent;
pub mod library_check;
pub mod manifest;
pub mod model;
pub mod random;
pub mod runtime;
pub mod schedule;
pub mod song;
pub mod structure;
pub mod tokens;
pub mod worker;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::harmony::{self, Chord, Key, Progression};
use crate::knobs::{Feel, KnobSnapshot, PhraseLength};
use crate::midi_clip::{self, ClipError};
use crate::pattern::{Part, Phrase, STEPS_PER_BAR};
use crate::stored::{ClipLatent, Song, StoredLatents};
use humanize::{HumanizeModel, Performance, apply_feel, humanize_folder_name};
use model::PartModel;
use runtime::{MODELS_ENV, Provider, ProviderChoice};
use song::{SONG_SLOTS, SongPrior};

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
    /// A scene to follow holds no melody.
    #[error("scene {0} holds no melody; store it first")]
    NoScene(&'static str),
}

/// Result of model operations.
pub type ModelResult<T> = Result<T, ModelError>;

/// The progression bass and melody follow under `knobs`, and its key: the
/// chord played in, or the typed progression (when followed and readable),
/// else the preset.
pub fn harmony(knobs: &KnobSnapshot, stored: &StoredLatents) -> (Progression, Key) {
    let typed = stored
        .typed_progression
        .as_ref()
        .filter(|_| knobs.harmony.typed && knobs.harmony.played.is_none())
        .and_then(|typed| typed.read().ok());
    match typed {
        Some(typed) => typed,
        None => (knobs.harmony.progression(), knobs.harmony.key()),
    }
}

/// The progression Song mode writes its song for under `knobs`: the typed
/// or preset one. A chord played in changes what the parts play over, not
/// the song, so a performer changing chords every bar keeps its material.
pub fn song_progression(knobs: &KnobSnapshot, stored: &StoredLatents) -> Progression {
    let mut knobs = *knobs;
    knobs.harmony.played = None;
    harmony(&knobs, stored).0
}

/// Bars in the phrase `knobs` decode to: the Phrase setting's, or the
/// progression's length (at least one model segment). Every part plays a
/// phrase of that length, so song bar `n` plays phrase bar `n mod bars` in
/// all three.
pub fn phrase_bars(knobs: &KnobSnapshot, stored: &StoredLatents) -> usize {
    knobs.phrase.bars(harmony(knobs, stored).0.bars())
}

/// Folder name of the default model of each part.
pub fn default_model_folder_name(part: Part) -> String {
    format!("{}_2bar", part.name())
}

/// Folder names of the song priors, one a part: each writes its part's
/// slots (a prior over bass and melody together wrote both worse than a
/// prior of their own each: models/README.md "Song prior").
pub const SONG_PRIOR_FOLDERS: [&str; 3] = ["song_drums", "song_melody", "song_bass"];

/// Folder name of each part's 16-bar hierarchical model.
pub fn long_model_folder_name(part: Part) -> String {
    format!("{}_16bar", part.name())
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

/// Everything a part's phrase is a pure function of: decoding the same inputs
/// again gives the same notes, so a part whose inputs did not change is never
/// decoded again.
#[derive(Debug, Clone, PartialEq)]
pub struct PartInputs {
    /// The latent vector (seed, knobs, clip and scenes already applied).
    pub latent: Vec<f32>,
    /// Seeds the sampling stream.
    pub seed: u32,
    /// Sampling temperature.
    pub temperature: f32,
    /// Length of the phrase in bars (see [`phrase_bars`]).
    pub bars: usize,
    /// Whether the part's 16-bar hierarchical model writes it (else its
    /// 2-bar model).
    pub long: bool,
    /// How the notes sit against the grid (applied after decoding: a new
    /// feel never runs the model again).
    pub feel: Feel,
    /// What a chord-following part plays over (`None` for one that takes
    /// no chords, so a new progression never decodes the drums again).
    pub harmony: Option<PartHarmony>,
    /// In Song mode: the take of the song it plays (0: the seed's own).
    pub song: Option<u32>,
    /// Where the Transformer VAE writes it, following a clip's structure
    /// (the melody only; see [`Engine::follow_structure`]): per bar, the bar
    /// whose embedding (and sampling stream) it plays, so that a repeat comes
    /// back note for note.
    pub bar_sources: Option<Vec<u8>>,
}

impl PartInputs {
    /// Whether `other` decodes to the same material (the same tokens),
    /// whatever its feel.
    pub fn same_material(&self, other: &PartInputs) -> bool {
        self.latent == other.latent
            && self.seed == other.seed
            && self.temperature == other.temperature
            && self.bars == other.bars
            && self.long == other.long
            && self.harmony == other.harmony
            && self.song == other.song
            && self.bar_sources == other.bar_sources
    }

    /// Whether the Transformer VAE writes it, following a clip's structure.
    pub fn follows_structure(&self) -> bool {
        self.bar_sources.is_some()
    }
}

/// The chords a part follows, and the notes it may play.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartHarmony {
    /// The progression, from the phrase's first bar.
    pub progression: Progression,
    /// With the scale lock on: the key's scale; no note outside it and the
    /// chord sounding is played.
    pub scale: Option<Chord>,
}

/// A part's last good decode: its inputs, the tokens they gave, and how a
/// player would perform them (when the part has a humanize model).
struct DecodedPart {
    inputs: PartInputs,
    tokens: Vec<i64>,
    /// Where only the bars needed first were decoded (see
    /// [`Engine::decode_first_bars`]): the first bar that still holds the
    /// previous decode's notes, until the rest is decoded.
    unfinished_from: Option<usize>,
    /// `None` until Humanize is first turned up for these tokens (most
    /// projects never do), or when there is no usable humanize model.
    performance: Option<Performance>,
    /// Whether the humanize model was asked already (once is enough).
    performed: bool,
}

/// What one [`Engine::decode`] did, part by part.
#[derive(Debug, Default)]
pub struct DecodeReport {
    /// Per part: whether its model ran (false: unchanged inputs reused the
    /// last notes, or the part has no model).
    pub decoded: [bool; 3],
    /// Per part: why its decode failed; the part then kept its last good
    /// notes (none if it never decoded).
    pub errors: [Option<ModelError>; 3],
    /// Per part: what it was decoded from (or would have been, had its model
    /// run); `None` where the part has no model.
    pub inputs: [Option<PartInputs>; 3],
    /// Whether this decode only finished the bars an earlier one left for
    /// later: the phrase is that one's music, with its later bars in place,
    /// and may replace it at any step.
    pub completes_previous: bool,
}

impl DecodeReport {
    /// The first part's error, if any part failed.
    pub fn result(self) -> ModelResult<()> {
        self.errors.into_iter().flatten().next().map_or(Ok(()), Err)
    }
}

/// Every part's model, each loaded (or failed) on its own so that one broken
/// model never silences the others.
pub struct Engine {
    /// Per part, by [`Part::index`]: the 2-bar model.
    pub parts: [Result<PartModel, ModelError>; 3],
    /// Per part: the 16-bar hierarchical model, for phrases of 4-16 bars
    /// (without it, those phrases come from the 2-bar model).
    pub long_parts: [Result<PartModel, ModelError>; 3],
    /// Per part, its humanize model (without one, Humanize does nothing
    /// for that part and Swing still applies).
    pub humanizers: [Result<HumanizeModel, ModelError>; 3],
    /// The song priors, by [`SONG_PRIOR_FOLDERS`] (a song's slots; without
    /// one, its parts loop their phrase in Song mode).
    pub song_priors: Vec<Result<SongPrior, ModelError>>,
    /// The melody's Transformer VAE, which plays a phrase following the
    /// structure of a clip (without it, Follow structure is refused and the
    /// melody plays as before).
    pub structure_model: Result<PartModel, ModelError>,
    /// The song of the last seed Song mode played without a stored one, and
    /// the progression it was written over.
    song: Option<(Song, Progression)>,
    /// Time the last [`Engine::decode`] took.
    pub last_decode: Duration,
    /// Per part: how long its model took the last time it ran (zero before).
    pub part_decode_time: [Duration; 3],
    /// Per part, the latent the last decode used (empty where the part's
    /// model did not load): what "store scene" keeps.
    pub last_latents: [Vec<f32>; 3],
    /// Per part: whether that latent is the 16-bar model's.
    pub last_latents_long: [bool; 3],
    /// Per part: the last good decode.
    decoded: [Option<DecodedPart>; 3],
}

impl Engine {
    /// Loads ONNX Runtime and the default model of every part from `models`.
    pub fn load(models: &Path, choice: ProviderChoice) -> Result<Engine, RuntimeError> {
        let runtime = runtime::runtime()?;
        let load = |folder: String, part: Part| {
            PartModel::load(runtime, &models.join(folder), part, choice)
        };
        let parts = Part::ALL.map(|part| load(default_model_folder_name(part), part));
        let long_parts = Part::ALL.map(|part| load(long_model_folder_name(part), part));
        let humanizers = Part::ALL.map(|part| {
            HumanizeModel::load(
                runtime,
                &models.join(humanize_folder_name(part)),
                part,
                choice,
            )
        });
        let song_priors = SONG_PRIOR_FOLDERS
            .iter()
            .map(|folder| SongPrior::load(runtime, &models.join(folder), choice))
            .collect();
        let structure_model = structure::load_model(runtime, models, choice);
        Ok(Engine {
            parts,
            long_parts,
            humanizers,
            song_priors,
            structure_model,
            song: None,
            last_decode: Duration::ZERO,
            part_decode_time: [Duration::ZERO; 3],
            last_latents: Default::default(),
            last_latents_long: [false; 3],
            decoded: Default::default(),
        })
    }

    /// The model that writes `part`'s phrase under `knobs`, whether it is a
    /// 16-bar one, and whether it follows a clip's structure: the melody's
    /// Transformer VAE where a structure is stored and the Phrase setting
    /// wants 16-bar models; else the part's 16-bar model where the setting
    /// wants it and it loaded; else the 2-bar model (`None` if none loaded).
    fn model(
        &self,
        part: Part,
        knobs: &KnobSnapshot,
        stored: &StoredLatents,
    ) -> Option<(&PartModel, bool, bool)> {
        let long_wanted = knobs.phrase.wants_long_models();
        if part == Part::Melody
            && long_wanted
            && stored.structure.is_some()
            && let Ok(model) = &self.structure_model
        {
            return Some((model, true, true));
        }
        let long = self.long_parts[part.index()]
            .as_ref()
            .ok()
            .filter(|_| long_wanted);
        match long {
            Some(model) => Some((model, true, false)),
            None => self.parts[part.index()]
                .as_ref()
                .ok()
                .map(|m| (m, false, false)),
        }
    }

    /// The model that decoded (or would decode) part `index`'s `inputs`.
    pub fn model_of(&self, index: usize, inputs: &PartInputs) -> Option<&PartModel> {
        let slot = if inputs.follows_structure() {
            &self.structure_model
        } else if inputs.long {
            self.long_parts.get(index)?
        } else {
            self.parts.get(index)?
        };
        slot.as_ref().ok()
    }

    /// Why `part`'s 16-bar model is not playing a phrase `knobs` wants it
    /// for, if it is not (the 2-bar model plays it instead).
    pub fn long_model_problem(&self, part: Part, knobs: &KnobSnapshot) -> Option<String> {
        match &self.long_parts[part.index()] {
            Err(error) if knobs.phrase.wants_long_models() => Some(format!(
                "its 16-bar model could not be loaded ({error}); the 2-bar model plays the phrase"
            )),
            _ => None,
        }
    }

    /// What `part` would be decoded from under `knobs` (`None` if its model
    /// did not load).
    ///
    /// A part plays the A-B morph when `knobs.scenes_on` and both scenes hold
    /// a latent of the playing model for it; otherwise its knobs move it from
    /// its imported clip, or from the seed's latent.
    pub fn part_inputs(
        &self,
        part: Part,
        knobs: &KnobSnapshot,
        stored: &StoredLatents,
    ) -> Option<PartInputs> {
        let (model, long, follows_structure) = self.model(part, knobs, stored)?;
        let part_knobs = knobs.part(part);
        let morph = knobs
            .scenes_on
            .then(|| stored.morph(part, knobs.morph, model.latent_size(), long))
            .flatten();
        let latent = morph.unwrap_or_else(|| {
            // The knobs move the structured phrase as they move a clip.
            let base = match &stored.structure {
                Some(structure) if follows_structure => Some(structure.latent.as_slice()),
                _ => stored.clip(part).map(|clip| clip.latent_for(long)),
            };
            model.latent(knobs.seed, part_knobs, base)
        });
        // Read once: a typed progression is parsed on every call.
        let (progression, key) = harmony(knobs, stored);
        let harmony = model.follows_chords().then(|| PartHarmony {
            progression,
            scale: knobs.harmony.scale_lock.then(|| key.scale()),
        });
        Some(PartInputs {
            latent,
            seed: knobs.seed,
            temperature: part_knobs.temperature,
            bars: knobs.phrase.bars(progression.bars()),
            long,
            feel: knobs.feel(part),
            harmony,
            song: (knobs.phrase == PhraseLength::Song)
                .then(|| stored.song_of(knobs.seed).map_or(0, |song| song.take)),
            bar_sources: stored
                .structure
                .as_ref()
                .filter(|_| follows_structure)
                .map(|structure| structure.bar_sources.clone()),
        })
    }

    /// Whether `part`'s last good decode came from inputs of the same
    /// material as `inputs` (a new feel alone decodes nothing).
    pub fn is_decoded(&self, part: Part, inputs: &PartInputs) -> bool {
        self.decoded[part.index()].as_ref().is_some_and(|decoded| {
            decoded.inputs.same_material(inputs) && decoded.unfinished_from.is_none()
        })
    }

    /// Whether a part's last decode left bars for later (see
    /// [`Engine::decode_first_bars`]): the next [`Engine::decode`] finishes them.
    pub fn has_unfinished_bars(&self) -> bool {
        self.decoded
            .iter()
            .flatten()
            .any(|decoded| decoded.unfinished_from.is_some())
    }

    /// Fills `phrase` with every part's notes for `knobs`. Only a part whose
    /// inputs changed since its last decode runs its model; a part whose
    /// decode fails keeps its last good notes (the report says why).
    ///
    /// `change_bar` is the song bar from which the phrase will be heard
    /// (`None`: from its start). A part playing a long phrase (from its
    /// 16-bar model) that keeps its length keeps the bars before that point
    /// as they were (they have been heard, and come back so the next time
    /// round) and decodes only the rest. A phrase from the 2-bar models is
    /// always decoded whole: it is short, and its knobs alone say what it
    /// plays. Bars an earlier [`Engine::decode_first_bars`] left for later
    /// are decoded now, exactly as a whole decode would have written them.
    pub fn decode(
        &mut self,
        knobs: &KnobSnapshot,
        stored: &StoredLatents,
        phrase: &mut Phrase,
        change_bar: Option<i64>,
    ) -> DecodeReport {
        self.decode_up_to(knobs, stored, phrase, change_bar, None)
    }

    /// As [`Engine::decode`], but a long phrase heard from `change_bar` on
    /// gets only its `bars` bars from there decoded now; its later bars keep
    /// the previous phrase's notes until the next [`Engine::decode`] (a knob
    /// move is heard on the next bar line after a fraction of a whole
    /// decode, and the rest follows long before it is played).
    pub fn decode_first_bars(
        &mut self,
        knobs: &KnobSnapshot,
        stored: &StoredLatents,
        phrase: &mut Phrase,
        change_bar: i64,
        bars: usize,
    ) -> DecodeReport {
        self.decode_up_to(knobs, stored, phrase, Some(change_bar), Some(bars))
    }

    fn decode_up_to(
        &mut self,
        knobs: &KnobSnapshot,
        stored: &StoredLatents,
        phrase: &mut Phrase,
        change_bar: Option<i64>,
        first_bars: Option<usize>,
    ) -> DecodeReport {
        let started = Instant::now();
        let mut report = DecodeReport::default();
        let mut continued = false;
        let mut new_material = false;
        phrase.bars = phrase_bars(knobs, stored);
        for part in Part::ALL {
            let index = part.index();
            let out = phrase.part_mut(part);
            out.clear();
            let Some(inputs) = self.part_inputs(part, knobs, stored) else {
                self.last_latents[index].clear();
                continue;
            };
            self.last_latents[index].clone_from(&inputs.latent);
            self.last_latents_long[index] = inputs.long;
            let stale = !self.is_decoded(part, &inputs);
            // Song mode: the song's slot latents (a song that cannot be
            // written leaves the part looping its phrase, and says why).
            let song = match inputs.song {
                Some(_) if stale => match self.song(knobs, stored) {
                    Ok(song) => Some(song),
                    Err(error) => {
                        report.errors[index] = Some(error);
                        None
                    }
                },
                _ => None,
            };
            // Field by field, so that the other fields stay free to use.
            let slot = if inputs.follows_structure() {
                &mut self.structure_model
            } else if inputs.long {
                &mut self.long_parts[index]
            } else {
                &mut self.parts[index]
            };
            if stale && let Ok(model) = slot {
                let part_started = Instant::now();
                report.decoded[index] = true;
                // A long phrase of the same length as the last one: its heard
                // bars stay, and its later bars can wait.
                let previous = self.decoded[index].as_ref().filter(|decoded| {
                    inputs.long && decoded.inputs.long && decoded.inputs.bars == inputs.bars
                });
                let from_bar = match previous {
                    Some(decoded) if decoded.inputs.same_material(&inputs) => {
                        continued = true;
                        decoded.unfinished_from.unwrap_or(0)
                    }
                    Some(_) => {
                        new_material = true;
                        change_bar.map_or(0, |bar| bar.rem_euclid(inputs.bars as i64) as usize)
                    }
                    None => {
                        new_material = true;
                        0
                    }
                };
                let end_bar = match (previous, first_bars) {
                    (Some(_), Some(bars)) => (from_bar + bars).min(inputs.bars),
                    _ => inputs.bars,
                };
                let kept = previous.map_or(&[][..], |decoded| {
                    &decoded.tokens[..from_bar * STEPS_PER_BAR]
                });
                let tokens = match &song {
                    Some(song) => {
                        let latents: Vec<Vec<f32>> = (0..SONG_SLOTS)
                            .map(|slot| match &song.latents[index] {
                                Some(slots) => {
                                    model.latent(knobs.seed, knobs.part(part), Some(&slots[slot]))
                                }
                                None => inputs.latent.clone(),
                            })
                            .collect();
                        model.decode_slots(&inputs, &latents, 0)
                    }
                    None => model.decode_tokens(&inputs, kept, end_bar),
                };
                match tokens {
                    Ok(mut tokens) => {
                        if let Some(previous) = previous {
                            tokens.extend_from_slice(&previous.tokens[tokens.len()..]);
                        }
                        self.decoded[index] = Some(DecodedPart {
                            inputs: inputs.clone(),
                            tokens,
                            unfinished_from: (end_bar < inputs.bars).then_some(end_bar),
                            performance: None,
                            performed: false,
                        })
                    }
                    Err(error) => report.errors[index] = Some(error),
                }
                self.part_decode_time[index] = part_started.elapsed();
            }
            if let Some(decoded) = &mut self.decoded[index]
                && inputs.feel.humanize > 0.0
                && !decoded.performed
            {
                decoded.performed = true;
                // A humanize model that fails leaves the notes on the grid.
                decoded.performance = match &mut self.humanizers[index] {
                    Ok(humanizer) => humanizer.perform(&decoded.tokens).ok(),
                    Err(_) => None,
                };
            }
            if let (Some(decoded), Some(model)) =
                (&self.decoded[index], self.model_of(index, &inputs))
            {
                model.notes(&decoded.tokens, out);
                apply_feel(out, decoded.performance.as_ref(), inputs.feel, |pitch| {
                    model.class_of(pitch)
                });
            }
            report.inputs[index] = Some(inputs);
        }
        report.completes_previous = continued && !new_material;
        self.last_decode = started.elapsed();
        report
    }

    /// Writes the song of `seed` with the song priors, to be played over
    /// `progression` (a prior that hears the chords writes for them). With
    /// `locked`, the locked slots of that song stay exactly as they are and
    /// the others are written again around them (infilling): the song's
    /// next take, its noise drawn from the seed and the take.
    pub fn write_song(
        &mut self,
        seed: u32,
        progression: &Progression,
        locked: Option<(&Song, &[bool; SONG_SLOTS])>,
    ) -> ModelResult<Song> {
        let take = locked.map_or(0, |(song, _)| song.take + 1);
        // Take 0 is the seed's own song; later takes draw other noise.
        let noise_seed = seed ^ take.wrapping_mul(0x9E37_79B9);
        let mut latents: [Option<Vec<Vec<f32>>>; 3] = Default::default();
        for (index, prior) in self.song_priors.iter_mut().enumerate() {
            let Ok(prior) = prior else { continue };
            // Each prior its own noise, so that no two draw the same.
            let prior_seed = noise_seed ^ (index as u32).wrapping_mul(0x85EB_CA6B);
            let spans = prior.spans.clone();
            // A locked slot keeps the latents of all the prior's parts.
            let kept: Vec<Option<Vec<f32>>> = (0..SONG_SLOTS)
                .map(|slot| {
                    let (song, locks) = locked?;
                    if !locks[slot] {
                        return None;
                    }
                    spans
                        .iter()
                        .map(|span| song.latents[span.part.index()].as_ref()?.get(slot).cloned())
                        .collect::<Option<Vec<Vec<f32>>>>()
                        .map(|parts| parts.concat())
                })
                .collect();
            let song = prior.write(prior_seed, progression, &kept)?;
            for span in spans {
                let part_slots = song
                    .iter()
                    .map(|slot| slot[span.offset..span.offset + span.size].to_vec())
                    .collect();
                latents[span.part.index()] = Some(part_slots);
            }
        }
        Ok(Song {
            seed,
            take,
            latents,
        })
    }

    /// The song `knobs` play, its unlocked slots written again around the
    /// `locked` ones for the same progression: its next take (a re-roll).
    pub fn reroll_song(
        &mut self,
        knobs: &KnobSnapshot,
        stored: &StoredLatents,
        locked: &[bool; SONG_SLOTS],
    ) -> ModelResult<Song> {
        let song = self.song(knobs, stored)?;
        let progression = song_progression(knobs, stored);
        self.write_song(knobs.seed, &progression, Some((&song, locked)))
    }

    /// The song `knobs` play with `latent` (an imported clip of `part`) in
    /// slot `slot`: the song's next take. `None` where no song prior writes
    /// `part` (the clip then plays as the part's phrase latent).
    pub fn song_with_clip(
        &mut self,
        knobs: &KnobSnapshot,
        stored: &StoredLatents,
        part: Part,
        slot: usize,
        latent: &[f32],
    ) -> ModelResult<Option<Song>> {
        let mut song = self.song(knobs, stored)?;
        let Some(slots) = &mut song.latents[part.index()] else {
            return Ok(None);
        };
        match slots.get_mut(slot) {
            Some(kept) if kept.len() == latent.len() => kept.copy_from_slice(latent),
            _ => return Ok(None),
        }
        song.take += 1;
        Ok(Some(song))
    }

    /// The song `knobs` play in Song mode: the one stored for their seed
    /// (its slots re-rolled), else the seed's own for their
    /// [`song_progression`], written once and kept until either changes.
    pub fn song(&mut self, knobs: &KnobSnapshot, stored: &StoredLatents) -> ModelResult<Song> {
        let seed = knobs.seed;
        if let Some(song) = stored.song_of(seed) {
            return Ok(song.clone());
        }
        let progression = song_progression(knobs, stored);
        match &self.song {
            Some((song, written_over))
                if song.seed == seed && song.take == 0 && *written_over == progression =>
            {
                Ok(song.clone())
            }
            _ => {
                let song = self.write_song(seed, &progression, None)?;
                self.song = Some((song.clone(), progression));
                Ok(song)
            }
        }
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
        let progression = harmony::default_progression();
        let chords = |steps: usize| -> Vec<Chord> {
            (0..steps).map(|step| progression.chord_at(step)).collect()
        };
        let latent = model.encode(&clip.tokens, &chords(clip.tokens.len()))?;
        // The 16-bar model hears the clip as a loop over all its bars.
        let long_latent = match &mut self.long_parts[part.index()] {
            Ok(long) => {
                let steps = long.bars() * STEPS_PER_BAR;
                let looped: Vec<i64> = clip.tokens.iter().copied().cycle().take(steps).collect();
                long.encode(&looped, &chords(steps))?
            }
            Err(_) => Vec::new(),
        };
        Ok(ClipLatent {
            name: path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
            summary: clip.summary(),
            latent,
            long_latent,
        })
    }

    /// The provider the loaded models run on (the first loaded part's).
    pub fn provider(&self) -> Option<Provider> {
        self.parts.iter().flatten().map(|m| m.provider).next()
    }
}
