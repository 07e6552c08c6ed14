//! One part's MusicVAE: its manifest, latent axes and ONNX sessions, and the
//! step-wise decode (sampling happens here, in Rust, so that a seed decodes
//! to the same tokens on every machine).

use std::path::{Path, PathBuf};

use ort::session::{Session, SessionOutputs};
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};

use super::latent::LatentAxes;
use super::manifest::{
    Dimension, FIRST_NOTE_ON_TOKEN, GraphSpec, Manifest, TensorSpec, Vocabulary, describe,
};
use super::random::SeededRandom;
use super::runtime::{Provider, ProviderChoice, Runtime};
use super::tokens::tokens_to_notes;
use super::{ModelError, ModelResult, PartInputs};
use crate::harmony::{CHROMA_SIZE, Chord, SegmentChords};
use crate::knobs::PartKnobs;
use crate::pattern::{LONG_MODEL_BARS, MODEL_BARS, MODEL_STEPS, Part, PartPhrase, STEPS_PER_BAR};

/// Stream id of token sampling (the latent draw uses another).
const SAMPLING_STREAM: u64 = 2;
/// The most sequences one batch decodes: a hierarchical model's bars.
const MAX_ROWS: usize = LONG_MODEL_BARS;

/// A hierarchical model's stream for bar `bar`: each bar samples on its own,
/// so decoding from a later bar on gives what a whole decode gives there.
fn bar_stream(bar: usize) -> u64 {
    SAMPLING_STREAM | ((bar as u64 + 1) << 12)
}

/// A song slot's stream: each slot samples on its own (apart from the bars
/// of a hierarchical model).
fn slot_stream(slot: usize) -> u64 {
    SAMPLING_STREAM | ((slot as u64 + 1) << 24)
}

/// A loaded, checked model for one part.
pub struct PartModel {
    /// Which part it plays.
    pub part: Part,
    /// The folder it came from.
    pub folder: PathBuf,
    /// Its checked manifest.
    pub manifest: Manifest,
    /// Its latent axes.
    pub axes: LatentAxes,
    /// Where it runs.
    pub provider: Provider,
    /// Why the requested provider is not the one in use, if it is not.
    pub provider_note: Option<String>,
    encoder: Session,
    /// Hierarchical models: z -> one embedding per bar.
    conductor: Option<Session>,
    decoder_init: Session,
    decoder_step: Session,
    /// Flat models: the gradient of a window's training loss with respect to z,
    /// which refines an encoded clip's latent.
    latent_gradient: Option<Session>,
}

impl PartModel {
    /// Loads the model in `folder` for `part`, checking the manifest, the
    /// latent axes and every graph's signature.
    pub fn load(
        runtime: &Runtime,
        folder: &Path,
        part: Part,
        choice: ProviderChoice,
    ) -> ModelResult<PartModel> {
        let manifest = Manifest::load(folder, part)?;
        let axes = LatentAxes::load(
            &folder.join(&manifest.latent_axes),
            part,
            manifest.latent_size,
        )?;
        let open = |spec: &GraphSpec| open_graph(runtime, folder, spec, choice);
        let (encoder, _, _) = open(&manifest.graphs.encoder)?;
        let conductor = match &manifest.graphs.conductor {
            Some(spec) => Some(open(spec)?.0),
            None => None,
        };
        let (decoder_init, _, _) = open(&manifest.graphs.decoder_init)?;
        let (decoder_step, provider, provider_note) = open(&manifest.graphs.decoder_step)?;
        let latent_gradient = match &manifest.graphs.latent_gradient {
            Some(spec) => Some(open(spec)?.0),
            None => None,
        };
        Ok(PartModel {
            part,
            folder: folder.to_path_buf(),
            manifest,
            axes,
            provider,
            provider_note,
            encoder,
            conductor,
            decoder_init,
            decoder_step,
            latent_gradient,
        })
    }

    /// Steps this model decodes from the start token, apart from the steps
    /// before them: a segment of a 2-bar model, a bar of a hierarchical one.
    fn piece_steps(&self) -> usize {
        if self.conductor.is_some() {
            STEPS_PER_BAR
        } else {
            MODEL_STEPS
        }
    }

    /// Bars one decode of this model writes: 2, or 16 for a hierarchical
    /// model (which may be asked for its first bars only).
    pub fn bars(&self) -> usize {
        self.manifest.bars
    }

    /// The latent for `seed` and `knobs`, moving from `base` (an imported
    /// clip's latent) when given; a base of another size is ignored.
    pub fn latent(&self, seed: u32, knobs: &PartKnobs, base: Option<&[f32]>) -> Vec<f32> {
        let mut z = vec![0.0; self.manifest.latent_size];
        let base = base.filter(|base| base.len() == z.len());
        self.axes.compose(seed, self.part, knobs, base, &mut z);
        z
    }

    /// Size of this model's latent vector.
    pub fn latent_size(&self) -> usize {
        self.manifest.latent_size
    }

    /// The token vocabulary (MIDI import needs it).
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.manifest.vocabulary
    }

    /// Whether the model follows chords (reads the chord of every step).
    pub fn follows_chords(&self) -> bool {
        self.manifest.chords.is_some()
    }

    /// Decodes the phrase of `inputs` up to bar `end_bar` (exclusive), one
    /// token per 16th step. The bars before `kept.len() / STEPS_PER_BAR` are
    /// `kept` as they are (bars already heard, when a knob moves
    /// mid-phrase) and only the later ones are decoded. A phrase decoded in
    /// two calls (up to some bar, then the rest with the first call's tokens
    /// kept) equals one decoded whole.
    ///
    /// A 2-bar model decodes a segment of [`MODEL_BARS`] bars at a time,
    /// each over its own bars of the progression (an odd phrase keeps the
    /// first bar of its last segment). Every segment is decoded from the same
    /// latent and sampling stream, so a motif comes back over each new
    /// chord; segments over the same chords (all of them, for drums) are
    /// decoded once. A hierarchical model's conductor gives each bar its
    /// embedding, and each bar is decoded from it over its chords.
    pub fn decode_tokens(
        &mut self,
        inputs: &PartInputs,
        kept: &[i64],
        end_bar: usize,
    ) -> ModelResult<Vec<i64>> {
        let bars = end_bar.min(inputs.bars);
        let from_bar = (kept.len() / STEPS_PER_BAR).min(bars);
        let mut tokens = Vec::with_capacity(inputs.bars * STEPS_PER_BAR);
        tokens.extend_from_slice(&kept[..from_bar * STEPS_PER_BAR]);
        if self.conductor.is_some() {
            self.decode_bars(inputs, from_bar..bars, &mut tokens)?;
            return Ok(tokens);
        }
        let mut segments: Vec<(SegmentChords, Vec<i64>)> = Vec::new();
        for first_bar in (0..bars).step_by(MODEL_BARS) {
            let end_bar = (first_bar + MODEL_BARS).min(bars);
            if end_bar <= from_bar {
                continue;
            }
            let chords = inputs
                .harmony
                .map_or([Chord::NONE; MODEL_STEPS], |harmony| {
                    harmony.progression.segment_chords(first_bar)
                });
            let known = segments.iter().position(|(known, _)| *known == chords);
            let index = match known {
                Some(index) => index,
                None => {
                    let mut random = [SeededRandom::new(
                        inputs.seed,
                        self.part.index(),
                        SAMPLING_STREAM,
                    )];
                    let segment = self.decode_rows(
                        inputs,
                        &inputs.latent,
                        MODEL_STEPS,
                        |_, step| chords[step],
                        &mut random,
                    )?;
                    segments.push((chords, segment));
                    segments.len() - 1
                }
            };
            let skip = from_bar.saturating_sub(first_bar) * STEPS_PER_BAR;
            let steps = (end_bar - first_bar) * STEPS_PER_BAR;
            tokens.extend_from_slice(&segments[index].1[skip..steps]);
        }
        Ok(tokens)
    }

    /// A hierarchical model's `bars`, appended to
    /// `tokens`: the conductor turns the latent into one embedding per bar,
    /// and the bars are decoded side by side, each from its embedding and the
    /// start token, over its own chords, with its own sampling stream.
    fn decode_bars(
        &mut self,
        inputs: &PartInputs,
        bars: std::ops::Range<usize>,
        tokens: &mut Vec<i64>,
    ) -> ModelResult<()> {
        let Some(conductor) = &mut self.conductor else {
            return Ok(());
        };
        let bars = bars.start..bars.end.min(self.manifest.bars);
        if bars.is_empty() {
            return Ok(());
        }
        let z = Tensor::from_array(([1usize, self.manifest.latent_size], inputs.latent.clone()))?;
        let size = self.manifest.bar_embedding_size();
        // A bar may play another bar's embedding and sampling stream (a
        // repeat, when following a clip's structure).
        let source = |bar: usize| {
            inputs
                .bar_sources
                .as_ref()
                .and_then(|sources| sources.get(bar))
                .map_or(bar, |&source| usize::from(source).min(bar))
        };
        let embeddings: Vec<f32> = {
            let outputs = conductor.run(ort::inputs!["z" => z])?;
            let all = outputs["bar_embeddings"].try_extract_tensor::<f32>()?.1;
            bars.clone()
                .flat_map(|bar| &all[source(bar) * size..(source(bar) + 1) * size])
                .copied()
                .collect()
        };
        let mut randoms: Vec<SeededRandom> = bars
            .clone()
            .map(|bar| SeededRandom::new(inputs.seed, self.part.index(), bar_stream(source(bar))))
            .collect();
        let first = bars.start;
        let chord = |row: usize, step: usize| {
            inputs.harmony.map_or(Chord::NONE, |harmony| {
                harmony
                    .progression
                    .chord_at((first + row) * STEPS_PER_BAR + step)
            })
        };
        tokens.extend(self.decode_rows(inputs, &embeddings, STEPS_PER_BAR, chord, &mut randoms)?);
        Ok(())
    }

    /// Decodes 2-bar slots of a song side by side: slot `first_slot + k`
    /// from `latents[k]`, over its own bars of the progression of `inputs`
    /// (looped), each sampling on its own stream, so a slot decodes the same
    /// whatever slots share its batch. Returns the slots' tokens one after
    /// another.
    pub fn decode_slots(
        &mut self,
        inputs: &PartInputs,
        latents: &[Vec<f32>],
        first_slot: usize,
    ) -> ModelResult<Vec<i64>> {
        let mut tokens = Vec::with_capacity(latents.len() * MODEL_STEPS);
        for (index, chunk) in latents.chunks(MAX_ROWS).enumerate() {
            let first = first_slot + index * MAX_ROWS;
            let flat: Vec<f32> = chunk.iter().flatten().copied().collect();
            if flat.len() != chunk.len() * self.manifest.latent_size {
                return Err(ModelError::Inference(ort::Error::new(
                    "a slot's latent is not this model's size",
                )));
            }
            let mut randoms: Vec<SeededRandom> = (first..first + chunk.len())
                .map(|slot| SeededRandom::new(inputs.seed, self.part.index(), slot_stream(slot)))
                .collect();
            let chord = |row: usize, step: usize| {
                inputs.harmony.map_or(Chord::NONE, |harmony| {
                    harmony
                        .progression
                        .chord_at((first + row) * MODEL_STEPS + step)
                })
            };
            tokens.extend(self.decode_rows(inputs, &flat, MODEL_STEPS, chord, &mut randoms)?);
        }
        Ok(tokens)
    }

    /// Decodes `randoms.len()` sequences of `steps` tokens side by side, as
    /// one batch: row `r` from its latent (z, or a bar's embedding: row `r`
    /// of `latents`), over `chord(r, step)` for a chord-conditioned model
    /// (and, with the scale lock, only notes of the key or of the chord
    /// sounding), at the temperature of `inputs`, sampling from `randoms[r]`.
    /// Returns the rows one after another.
    ///
    /// A batch costs little more than one row: a step is bound by reading
    /// the decoder's weights, which every row shares.
    fn decode_rows(
        &mut self,
        inputs: &PartInputs,
        latents: &[f32],
        steps: usize,
        chord: impl Fn(usize, usize) -> Chord,
        randoms: &mut [SeededRandom],
    ) -> ModelResult<Vec<i64>> {
        let rows = randoms.len();
        let temperature = inputs.temperature;
        let scale = inputs.harmony.and_then(|harmony| harmony.scale);
        // The note-on tokens and their pitches, for the scale lock.
        let note_ons: Vec<(usize, u8)> = match &self.manifest.vocabulary {
            Vocabulary::Melodic {
                min_pitch,
                max_pitch,
                ..
            } if scale.is_some() => (*min_pitch..=*max_pitch)
                .map(|pitch| {
                    let token = FIRST_NOTE_ON_TOKEN + i64::from(pitch - min_pitch);
                    (token as usize, pitch)
                })
                .collect(),
            _ => Vec::new(),
        };
        let vocabulary = self.manifest.vocabulary.size();
        let mut masked = vec![0.0f32; vocabulary];
        // The conditioning and token tensors are made once and read by every
        // step; each step's state outputs are handed straight back as the
        // next step's inputs, so nothing is copied between steps.
        let width = latents.len() / rows.max(1);
        let latents = Tensor::from_array(([rows, width], latents.to_vec()))?;
        let init_input = self.manifest.graphs.decoder_init.inputs[0].name.as_str();
        let mut init = self.decoder_init.run(ort::inputs![init_input => latents])?;
        let (mut h, mut c) = (take_output(&mut init, "h")?, take_output(&mut init, "c")?);
        let conditioning = take_output(&mut init, "conditioning")?;
        drop(init);
        let mut token = Tensor::from_array(([rows], vec![self.manifest.start_token; rows]))?;
        let mut chords =
            Tensor::from_array(([rows, CHROMA_SIZE], vec![0.0f32; rows * CHROMA_SIZE]))?;
        let follows_chords = self.follows_chords();
        let mut tokens = vec![0i64; rows * steps];
        for step in 0..steps {
            let mut outputs = if follows_chords {
                let values = chords.extract_tensor_mut().1;
                for (row, values) in values.chunks_exact_mut(CHROMA_SIZE).enumerate() {
                    values.copy_from_slice(&chord(row, step).chroma());
                }
                self.decoder_step.run(ort::inputs![
                    "token" => &token,
                    "chord" => &chords,
                    "conditioning" => &conditioning,
                    "h" => &h,
                    "c" => &c,
                ])?
            } else {
                self.decoder_step.run(ort::inputs![
                    "token" => &token,
                    "conditioning" => &conditioning,
                    "h" => &h,
                    "c" => &c,
                ])?
            };
            let logits = outputs["logits"].try_extract_tensor::<f32>()?.1;
            if logits.iter().any(|l| !l.is_finite()) {
                return Err(ModelError::NotFinite {
                    folder: self.folder.clone(),
                });
            }
            let mut next = [0i64; MAX_ROWS];
            for (row, (logits, random)) in logits
                .chunks_exact(vocabulary)
                .zip(randoms.iter_mut())
                .enumerate()
            {
                next[row] = match scale {
                    None => random.sample_logits(logits, temperature),
                    Some(scale) => {
                        // Outside the key and the chord: no probability at any
                        // temperature (a borrowed chord's own notes stay allowed).
                        let sounding = chord(row, step);
                        masked.copy_from_slice(logits);
                        for &(token, pitch) in &note_ons {
                            if !scale.contains(pitch) && !sounding.contains(pitch) {
                                masked[token] = f32::NEG_INFINITY;
                            }
                        }
                        random.sample_logits(&masked, temperature)
                    }
                } as i64;
                tokens[row * steps + step] = next[row];
            }
            h = take_output(&mut outputs, "h_out")?;
            c = take_output(&mut outputs, "c_out")?;
            token.extract_tensor_mut().1.copy_from_slice(&next[..rows]);
        }
        Ok(tokens)
    }

    /// Decodes the phrase of `inputs` into `out` (see [`Self::decode_tokens`]).
    pub fn decode(&mut self, inputs: &PartInputs, out: &mut PartPhrase) -> ModelResult<()> {
        let tokens = self.decode_tokens(inputs, &[], inputs.bars)?;
        self.notes(&tokens, out);
        Ok(())
    }

    /// The notes `tokens` play, on the grid at the vocabulary's velocities.
    pub fn notes(&self, tokens: &[i64], out: &mut PartPhrase) {
        tokens_to_notes(&self.manifest.vocabulary, tokens, self.piece_steps(), out);
    }

    /// The drum class of a note of `pitch` (drums), or 0 (bass and melody).
    pub fn class_of(&self, pitch: u8) -> Option<usize> {
        match &self.manifest.vocabulary {
            Vocabulary::DrumClasses { classes, .. } => {
                classes.iter().position(|class| class.pitch == pitch)
            }
            Vocabulary::Melodic { .. } => Some(0),
        }
    }

    /// The latent of one window of tokens (as many as the model decodes)
    /// over `chords`, one a step: the encoder mean, refined where the model
    /// has a latent gradient graph (MIDI import uses it to find the latent
    /// of a musician's own pattern).
    pub fn encode(&mut self, tokens: &[i64], chords: &[Chord]) -> ModelResult<Vec<f32>> {
        let window = Tensor::from_array(([1usize, tokens.len()], tokens.to_vec()))?;
        let chroma = self.follows_chords().then(|| {
            let values: Vec<f32> = chords.iter().flat_map(|chord| chord.chroma()).collect();
            ([1usize, chords.len(), CHROMA_SIZE], values)
        });
        let outputs = match &chroma {
            Some(chroma) => self.encoder.run(
                ort::inputs!["tokens" => window, "chords" => Tensor::from_array(chroma.clone())?],
            )?,
            None => self.encoder.run(ort::inputs!["tokens" => window])?,
        };
        let mu = outputs["mu"].try_extract_tensor::<f32>()?.1.to_vec();
        let sigma = outputs["sigma"].try_extract_tensor::<f32>()?.1.to_vec();
        drop(outputs);
        let (Some(gradient_graph), Some(refinement)) =
            (&mut self.latent_gradient, self.manifest.refinement)
        else {
            return Ok(mu);
        };
        let latent_size = mu.len();
        let mut latent = AdamOnLatent::new(mu, refinement.learning_rate);
        for _ in 0..refinement.steps {
            let shape = [1usize, latent_size];
            let mut inputs = ort::inputs![
                "tokens" => Tensor::from_array(([1usize, tokens.len()], tokens.to_vec()))?,
                "z" => Tensor::from_array((shape, latent.z.clone()))?,
                "sigma" => Tensor::from_array((shape, sigma.clone()))?,
            ];
            if let Some(chroma) = &chroma {
                inputs.push(("chords".into(), Tensor::from_array(chroma.clone())?.into()));
            }
            let outputs = gradient_graph.run(inputs)?;
            let gradient = outputs["gradient"].try_extract_tensor::<f32>()?.1;
            latent.step(gradient);
        }
        Ok(latent.z)
    }
}

/// Adam (Kingma and Ba 2015; PyTorch's defaults) on one latent, as
/// `MusicVAE.refine` runs it in training's Python.
struct AdamOnLatent {
    z: Vec<f32>,
    mean: Vec<f32>,
    variance: Vec<f32>,
    learning_rate: f32,
    steps: i32,
}

impl AdamOnLatent {
    const BETA1: f32 = 0.9;
    const BETA2: f32 = 0.999;
    const EPSILON: f32 = 1e-8;

    fn new(z: Vec<f32>, learning_rate: f32) -> Self {
        let size = z.len();
        Self {
            z,
            mean: vec![0.0; size],
            variance: vec![0.0; size],
            learning_rate,
            steps: 0,
        }
    }

    /// One step down `gradient`.
    fn step(&mut self, gradient: &[f32]) {
        self.steps += 1;
        let mean_correction = 1.0 - Self::BETA1.powi(self.steps);
        let variance_correction = (1.0 - Self::BETA2.powi(self.steps)).sqrt();
        for (((z, mean), variance), &g) in self
            .z
            .iter_mut()
            .zip(&mut self.mean)
            .zip(&mut self.variance)
            .zip(gradient)
        {
            *mean = Self::BETA1 * *mean + (1.0 - Self::BETA1) * g;
            *variance = Self::BETA2 * *variance + (1.0 - Self::BETA2) * g * g;
            let denominator = variance.sqrt() / variance_correction + Self::EPSILON;
            *z -= self.learning_rate / mean_correction * *mean / denominator;
        }
    }
}

/// Opens the graph `spec` names in `folder` on the provider of `choice`,
/// and checks its signature against `spec`.
pub(super) fn open_graph(
    runtime: &Runtime,
    folder: &Path,
    spec: &GraphSpec,
    choice: ProviderChoice,
) -> ModelResult<(Session, Provider, Option<String>)> {
    let path = Manifest::graph_path(folder, spec);
    if !path.is_file() {
        return Err(ModelError::Unreadable {
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
            path,
        });
    }
    let opened = runtime
        .open(&path, choice)
        .map_err(|source| ModelError::GraphUnloadable {
            path: path.clone(),
            message: source.to_string(),
        })?;
    check_signature(&opened.0, spec, &path)?;
    Ok(opened)
}

/// Takes output `name` out of a run's outputs (the signature check on load
/// makes sure that it is there).
pub(super) fn take_output(outputs: &mut SessionOutputs<'_>, name: &str) -> ModelResult<DynValue> {
    outputs
        .remove(name)
        .ok_or_else(|| ModelError::Inference(ort::Error::new(format!("no output {name}"))))
}

/// Checks that a session's inputs and outputs are exactly the manifest's.
fn check_signature(session: &Session, spec: &GraphSpec, path: &Path) -> ModelResult<()> {
    let found = |outlets: &[ort::value::Outlet]| -> Vec<TensorSpec> {
        outlets
            .iter()
            .map(|outlet| {
                let (dtype, shape) = match outlet.dtype() {
                    ValueType::Tensor { ty, shape, .. } => (
                        match ty {
                            TensorElementType::Float32 => "float32".to_string(),
                            TensorElementType::Int64 => "int64".to_string(),
                            other => format!("{other:?}").to_lowercase(),
                        },
                        shape.iter().copied().collect::<Vec<i64>>(),
                    ),
                    other => (format!("{other:?}"), Vec::new()),
                };
                TensorSpec {
                    name: outlet.name().to_string(),
                    dtype,
                    // A dynamic axis reads -1; the contract's only one is the batch.
                    shape: shape
                        .into_iter()
                        .map(|d| {
                            if d < 0 {
                                Dimension::Named("batch".into())
                            } else {
                                Dimension::Fixed(d)
                            }
                        })
                        .collect(),
                }
            })
            .collect()
    };
    let (inputs, outputs) = (found(session.inputs()), found(session.outputs()));
    if inputs != spec.inputs || outputs != spec.outputs {
        return Err(ModelError::GraphSignature {
            path: path.to_path_buf(),
            expected: format!("{} -> {}", describe(&spec.inputs), describe(&spec.outputs)),
            found: format!("{} -> {}", describe(&inputs), describe(&outputs)),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::AdamOnLatent;

    #[test]
    fn adam_first_moves_every_value_by_the_step_size_against_its_gradient_then_settles_in_the_minimum()
     {
        // The gradient of (z - 3)^2 per value, from z = 0 and z = 5.
        let mut adam = AdamOnLatent::new(vec![0.0, 5.0], 0.1);
        let gradient = |z: &[f32]| z.iter().map(|z| 2.0 * (z - 3.0)).collect::<Vec<f32>>();
        adam.step(&gradient(&adam.z));
        assert!(
            (adam.z[0] - 0.1).abs() < 1e-5 && (adam.z[1] - 4.9).abs() < 1e-5,
            "{:?}",
            adam.z
        );
        for _ in 0..500 {
            adam.step(&gradient(&adam.z));
        }
        assert!(
            adam.z.iter().all(|z| (z - 3.0).abs() < 0.05),
            "{:?}",
            adam.z
        );
    }
}
