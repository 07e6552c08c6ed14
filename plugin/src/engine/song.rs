//! WORKER THREAD ONLY: the song prior, a diffusion model over the latents of
//! a song's 32 2-bar slots (64 bars), after Mittal et al. 2021 (see
//! `models/README.md`, "Song prior").
//!
//! The sampler is DDIM: from seeded Gaussian noise, a few deterministic
//! steps, each asking the denoiser for the noise in the current latents.
//! Infilling keeps chosen slots: the denoiser reads them (their clean latents
//! and a flag per slot; it was trained to write around them), and before
//! every step they are put back, diffused to that step's noise level with one
//! fixed noise draw; a prior whose manifest asks for it takes each infilling
//! step several times, noising the result back between tries (RePaint's
//! resampling), so the written slots agree with the kept ones.
//!
//! A prior whose manifest says so also hears the chords every slot will be
//! played over (per slot, the share of its steps each pitch class sounds in
//! the chord), so that it writes a song for that progression.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;

use super::manifest::{Dimension, GraphSpec, TensorSpec, read_manifest};
use super::model::{open_graph, take_output};
use super::random::SeededRandom;
use super::runtime::{ProviderChoice, Runtime};
use super::{ModelError, ModelResult};
use crate::harmony::{CHROMA_SIZE, Progression};
use crate::pattern::{MODEL_BARS, MODEL_STEPS, Part};
pub use crate::pattern::{SONG_BARS, SONG_SLOTS};

/// The song prior format this build reads.
pub const SONG_FORMAT_VERSION: u32 = 2;
/// The sampler's noise stream (apart from every token-sampling stream).
const SONG_NOISE_STREAM: u64 = 0x50_4E47;
/// Most tries of an infilling step a manifest may ask for (each is a
/// denoiser run).
const MAX_INFILL_RESAMPLE: usize = 20;

/// `manifest.json` of a song prior folder.
#[derive(Debug, Clone, Deserialize)]
pub struct SongManifest {
    /// Manifest format; others are refused with a plain message.
    pub format_version: u32,
    /// Display name, e.g. `song_melody`.
    pub name: String,
    /// The parts whose latents sit side by side in a slot, in order.
    pub parts: Vec<String>,
    /// Slots in a song.
    pub slots: usize,
    /// Bars a slot holds.
    pub slot_bars: usize,
    /// Size of one slot's latent (all its parts').
    pub latent_size: usize,
    /// The noise schedule the denoiser was trained on.
    pub schedule: Schedule,
    /// The sampler to run.
    pub sampler: Sampler,
    /// The per-dimension map between latents and the denoiser's [-1, 1].
    pub scaling: Scaling,
    /// The chords it hears (`None`: it writes without them).
    #[serde(default)]
    pub harmony: Option<SongHarmony>,
    /// The ONNX graph.
    pub graphs: SongGraphs,
}

/// DDPM's linear schedule.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Schedule {
    /// Steps of the schedule.
    pub steps: usize,
    /// First beta.
    pub beta_start: f64,
    /// Last beta.
    pub beta_end: f64,
}

/// The sampler the manifest asks for.
#[derive(Debug, Clone, Deserialize)]
pub struct Sampler {
    /// Only `ddim`.
    pub kind: String,
    /// Denoising steps.
    pub steps: usize,
    /// Tries of each step when infilling (1: none repeated).
    #[serde(default = "one_try")]
    pub infill_resample: usize,
}

fn one_try() -> usize {
    1
}

/// Per-dimension range of the training latents.
#[derive(Debug, Clone, Deserialize)]
pub struct Scaling {
    /// Minimum per dimension (maps to -1).
    pub low: Vec<f32>,
    /// Maximum per dimension (maps to 1).
    pub high: Vec<f32>,
}

/// What a prior that hears the chords reads of each slot.
#[derive(Debug, Clone, Deserialize)]
pub struct SongHarmony {
    /// Values per slot: the 12 pitch classes' shares, then no chord's.
    pub size: usize,
}

/// The song prior's graphs.
#[derive(Debug, Clone, Deserialize)]
pub struct SongGraphs {
    /// noisy latents, noise level, kept slots -> predicted noise.
    pub denoiser: GraphSpec,
}

/// Where one slot's latents of `parts` sit: `latent[offset..offset + size]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSpan {
    /// The part.
    pub part: Part,
    /// First dimension.
    pub offset: usize,
    /// Dimensions.
    pub size: usize,
}

/// A song's latents: one vector per slot, each holding the prior's parts
/// side by side (see [`SongPrior::span`]).
pub type SongLatents = Vec<Vec<f32>>;

/// The denoiser's inputs for one song, reused by every step of its sampler.
struct DenoiserInputs {
    /// The current latents (written before each run).
    noisy: Tensor<f32>,
    /// The current noise level (written before each run).
    noise_level: Tensor<f32>,
    /// The kept slots' scaled latents, zero elsewhere.
    known: Tensor<f32>,
    /// 1 for a kept slot, else 0.
    keep: Tensor<f32>,
    /// Every slot's harmony, for a prior that hears it.
    harmony: Option<Tensor<f32>>,
}

/// A loaded, checked song prior.
pub struct SongPrior {
    /// Its folder.
    pub folder: PathBuf,
    /// Its manifest.
    pub manifest: SongManifest,
    /// The parts it writes and where their latents sit in a slot.
    pub spans: Vec<PartSpan>,
    denoiser: Session,
    /// Noise levels sqrt(alpha_bar) the sampler visits, noisiest first,
    /// ending at 1 (clean).
    levels: Vec<f64>,
}

impl SongManifest {
    fn check(&self, path: &Path) -> ModelResult<Vec<PartSpan>> {
        let refuse = |detail: String| ModelError::ManifestContent {
            path: path.to_path_buf(),
            detail,
        };
        if self.format_version != SONG_FORMAT_VERSION {
            return Err(refuse(format!(
                "song prior format {} is not the one this version plays ({SONG_FORMAT_VERSION}); export it again with this version's models/ tools",
                self.format_version
            )));
        }
        if self.slots != SONG_SLOTS || self.slot_bars != MODEL_BARS {
            return Err(refuse(format!(
                "a song is {SONG_SLOTS} slots of {MODEL_BARS} bars, not {} of {}",
                self.slots, self.slot_bars
            )));
        }
        let parts: Vec<Part> = self
            .parts
            .iter()
            .map(|name| {
                Part::from_name(name).ok_or_else(|| refuse(format!("unknown part {name:?}")))
            })
            .collect::<ModelResult<_>>()?;
        if parts.is_empty()
            || self.latent_size == 0
            || !self.latent_size.is_multiple_of(parts.len())
        {
            return Err(refuse(format!(
                "{} dimensions do not split evenly between {} parts",
                self.latent_size,
                parts.len()
            )));
        }
        let width = self.latent_size / parts.len();
        let scaling = &self.scaling;
        let sane = scaling.low.len() == self.latent_size
            && scaling.high.len() == self.latent_size
            && scaling
                .low
                .iter()
                .zip(&scaling.high)
                .all(|(low, high)| low.is_finite() && high.is_finite() && high > low);
        if !sane {
            return Err(refuse(format!(
                "the scaling needs {} finite ranges, each with low below high",
                self.latent_size
            )));
        }
        let schedule = self.schedule;
        let schedule_sane = (1..=10_000).contains(&schedule.steps)
            && schedule.beta_start > 0.0
            && schedule.beta_end < 1.0
            && schedule.beta_start <= schedule.beta_end;
        if !schedule_sane {
            return Err(refuse("the noise schedule is out of range".into()));
        }
        if self.sampler.kind != "ddim"
            || !(1..=schedule.steps).contains(&self.sampler.steps)
            || !(1..=MAX_INFILL_RESAMPLE).contains(&self.sampler.infill_resample)
        {
            return Err(refuse(format!(
                "sampler {:?} with {} steps ({} tries an infilling step) is not one this version runs",
                self.sampler.kind, self.sampler.steps, self.sampler.infill_resample
            )));
        }
        let batch = || Dimension::Named("batch".into());
        let latents = |name: &str| TensorSpec {
            name: name.into(),
            dtype: "float32".into(),
            shape: vec![
                batch(),
                Dimension::Fixed(SONG_SLOTS as i64),
                Dimension::Fixed(self.latent_size as i64),
            ],
        };
        let level = TensorSpec {
            name: "noise_level".into(),
            dtype: "float32".into(),
            shape: vec![batch()],
        };
        let keep = TensorSpec {
            name: "keep".into(),
            dtype: "float32".into(),
            shape: vec![batch(), Dimension::Fixed(SONG_SLOTS as i64)],
        };
        let denoiser = &self.graphs.denoiser;
        let mut inputs = vec![latents("noisy"), level, latents("known"), keep];
        if let Some(harmony) = &self.harmony {
            if harmony.size != CHROMA_SIZE {
                return Err(refuse(format!(
                    "a slot's harmony is {CHROMA_SIZE} values (12 pitch classes and no chord), not {}",
                    harmony.size
                )));
            }
            inputs.push(TensorSpec {
                name: "harmony".into(),
                dtype: "float32".into(),
                shape: vec![
                    batch(),
                    Dimension::Fixed(SONG_SLOTS as i64),
                    Dimension::Fixed(CHROMA_SIZE as i64),
                ],
            });
        }
        if denoiser.inputs != inputs || denoiser.outputs != [latents("noise")] {
            let keep = if self.harmony.is_some() {
                format!(
                    ", keep [batch, {SONG_SLOTS}] and harmony [batch, {SONG_SLOTS}, {CHROMA_SIZE}]"
                )
            } else {
                format!(" and keep [batch, {SONG_SLOTS}]")
            };
            return Err(refuse(format!(
                "the denoiser must map noisy [batch, {SONG_SLOTS}, {n}], noise_level [batch], known [batch, {SONG_SLOTS}, {n}]{keep} to noise [batch, {SONG_SLOTS}, {n}]",
                n = self.latent_size
            )));
        }
        Ok(parts
            .into_iter()
            .enumerate()
            .map(|(index, part)| PartSpan {
                part,
                offset: index * width,
                size: width,
            })
            .collect())
    }

    /// The levels sqrt(alpha_bar) a DDIM sampler visits: `sampler.steps`
    /// points evenly spread over the schedule, noisiest first, then 1.
    fn levels(&self) -> Vec<f64> {
        let Schedule {
            steps,
            beta_start,
            beta_end,
        } = self.schedule;
        let mut alpha_bar = 1.0;
        let alpha_bars: Vec<f64> = (0..steps)
            .map(|index| {
                let beta =
                    beta_start + (beta_end - beta_start) * index as f64 / (steps.max(2) - 1) as f64;
                alpha_bar *= 1.0 - beta;
                alpha_bar
            })
            .collect();
        let count = self.sampler.steps;
        let mut levels: Vec<f64> = (0..count)
            .map(|k| {
                let position = if count == 1 {
                    0.0
                } else {
                    k as f64 / (count - 1) as f64
                };
                let index = ((steps - 1) as f64 * (1.0 - position)).round() as usize;
                alpha_bars[index].sqrt()
            })
            .collect();
        levels.push(1.0);
        levels
    }
}

impl SongPrior {
    /// Loads the prior in `folder`, checking its manifest and graph.
    pub fn load(runtime: &Runtime, folder: &Path, choice: ProviderChoice) -> ModelResult<Self> {
        let path = folder.join("manifest.json");
        let manifest: SongManifest = read_manifest(&path)?;
        let spans = manifest.check(&path)?;
        let (denoiser, _, _) = open_graph(runtime, folder, &manifest.graphs.denoiser, choice)?;
        let levels = manifest.levels();
        Ok(SongPrior {
            folder: folder.to_path_buf(),
            manifest,
            spans,
            denoiser,
            levels,
        })
    }

    /// Where `part`'s latent sits in a slot, if this prior writes it.
    pub fn span(&self, part: Part) -> Option<PartSpan> {
        self.spans.iter().copied().find(|span| span.part == part)
    }

    /// A song for `seed`: every slot's latent (unscaled, as the 2-bar
    /// models' encoders give them), for a song played over `progression`
    /// (looped over its slots). Slots given in `kept` (a slot's whole
    /// latent, or `None` to write it) stay exactly as they are and the rest
    /// is written around them.
    pub fn write(
        &mut self,
        seed: u32,
        progression: &Progression,
        kept: &[Option<Vec<f32>>],
    ) -> ModelResult<SongLatents> {
        let size = self.manifest.latent_size;
        let total = SONG_SLOTS * size;
        let mut random = SeededRandom::new(seed, 0, SONG_NOISE_STREAM);
        let mut x: Vec<f32> = (0..total).map(|_| random.normal()).collect();
        let fixed_noise: Vec<f32> = (0..total).map(|_| random.normal()).collect();
        // The kept slots, as the denoiser reads them: their latents in its
        // [-1, 1] (zero elsewhere) and a flag per slot.
        let kept_latent = |slot: usize| {
            kept.get(slot)
                .and_then(Option::as_ref)
                .filter(|latent| latent.len() == size)
        };
        let mut known = vec![0.0f32; total];
        let mut keep = vec![0.0f32; SONG_SLOTS];
        for slot in 0..SONG_SLOTS {
            if let Some(latent) = kept_latent(slot) {
                known[slot * size..(slot + 1) * size].copy_from_slice(&self.scale(latent));
                keep[slot] = 1.0;
            }
        }
        let kept_slots: Vec<usize> = (0..SONG_SLOTS).filter(|&slot| keep[slot] > 0.0).collect();
        let tries = if kept_slots.is_empty() {
            1
        } else {
            self.manifest.sampler.infill_resample
        };
        // Made once and read by every denoiser run.
        let mut inputs = DenoiserInputs {
            noisy: Tensor::from_array(([1usize, SONG_SLOTS, size], vec![0.0f32; total]))?,
            noise_level: Tensor::from_array(([1usize], vec![0.0f32]))?,
            known: Tensor::from_array(([1usize, SONG_SLOTS, size], known))?,
            keep: Tensor::from_array(([1usize, SONG_SLOTS], keep))?,
            harmony: match self.manifest.harmony {
                Some(_) => Some(Tensor::from_array((
                    [1usize, SONG_SLOTS, CHROMA_SIZE],
                    slot_harmony(progression),
                ))?),
                None => None,
            },
        };
        let steps: Vec<(f64, f64)> = self.levels.windows(2).map(|w| (w[0], w[1])).collect();
        for (level, next) in steps {
            let spread = (1.0 - level * level).max(0.0).sqrt();
            for attempt in 0..tries {
                if attempt > 0 {
                    // Back to this step's noise level with fresh noise.
                    let ratio = level / next;
                    let fresh = (1.0 - ratio * ratio).max(0.0).sqrt();
                    for x in x.iter_mut() {
                        *x = (ratio * f64::from(*x) + fresh * f64::from(random.normal())) as f32;
                    }
                }
                let (_, known) = inputs.known.extract_tensor();
                for &slot in &kept_slots {
                    let range = slot * size..(slot + 1) * size;
                    for ((x, fixed), noise) in x[range.clone()]
                        .iter_mut()
                        .zip(&known[range.clone()])
                        .zip(&fixed_noise[range])
                    {
                        *x = (level * f64::from(*fixed) + spread * f64::from(*noise)) as f32;
                    }
                }
                let predicted = self.predict_noise(&mut inputs, &x, level)?;
                let next_spread = (1.0 - next * next).max(0.0).sqrt();
                for (x, eps) in x.iter_mut().zip(predicted) {
                    let clean = (f64::from(*x) - spread * f64::from(eps)) / level;
                    *x = (next * clean + next_spread * f64::from(eps)) as f32;
                }
            }
        }
        Ok((0..SONG_SLOTS)
            .map(|slot| match kept_latent(slot) {
                Some(latent) => latent.clone(),
                None => self.unscale(&x[slot * size..(slot + 1) * size]),
            })
            .collect())
    }

    /// The denoiser's estimate of the noise in `x` at noise level `level`,
    /// given the kept slots already in `inputs`.
    fn predict_noise(
        &mut self,
        inputs: &mut DenoiserInputs,
        x: &[f32],
        level: f64,
    ) -> ModelResult<Vec<f32>> {
        inputs.noisy.extract_tensor_mut().1.copy_from_slice(x);
        inputs.noise_level.extract_tensor_mut().1[0] = level as f32;
        let mut outputs = match &inputs.harmony {
            Some(harmony) => self.denoiser.run(ort::inputs![
                "noisy" => &inputs.noisy,
                "noise_level" => &inputs.noise_level,
                "known" => &inputs.known,
                "keep" => &inputs.keep,
                "harmony" => harmony,
            ])?,
            None => self.denoiser.run(ort::inputs![
                "noisy" => &inputs.noisy,
                "noise_level" => &inputs.noise_level,
                "known" => &inputs.known,
                "keep" => &inputs.keep,
            ])?,
        };
        let predicted = take_output(&mut outputs, "noise")?;
        let (_, predicted) = predicted.try_extract_tensor::<f32>()?;
        if predicted.iter().any(|value| !value.is_finite()) {
            return Err(ModelError::NotFinite {
                folder: self.folder.clone(),
            });
        }
        Ok(predicted.to_vec())
    }

    fn scale(&self, latent: &[f32]) -> Vec<f32> {
        let Scaling { low, high } = &self.manifest.scaling;
        latent
            .iter()
            .zip(low.iter().zip(high))
            .map(|(value, (low, high))| 2.0 * (value - low) / (high - low) - 1.0)
            .collect()
    }

    fn unscale(&self, scaled: &[f32]) -> Vec<f32> {
        let Scaling { low, high } = &self.manifest.scaling;
        scaled
            .iter()
            .zip(low.iter().zip(high))
            .map(|(value, (low, high))| (value + 1.0) / 2.0 * (high - low) + low)
            .collect()
    }
}

/// Every slot's harmony as a prior hears it, flat [slot][value]: per slot,
/// the share of its steps in which each pitch class sounds in the chord of
/// `progression` (looped), then the share with no chord.
fn slot_harmony(progression: &Progression) -> Vec<f32> {
    let mut harmony = vec![0.0f32; SONG_SLOTS * CHROMA_SIZE];
    for (slot, shares) in harmony.chunks_exact_mut(CHROMA_SIZE).enumerate() {
        for step in slot * MODEL_STEPS..(slot + 1) * MODEL_STEPS {
            for (share, sounds) in shares.iter_mut().zip(progression.chord_at(step).chroma()) {
                *share += sounds / MODEL_STEPS as f32;
            }
        }
    }
    harmony
}
