//! One part's MusicVAE: its manifest, latent axes and ONNX sessions, and the
//! step-wise decode (sampling happens here, in Rust, so that a seed decodes
//! to the same tokens on every machine).

use std::path::{Path, PathBuf};

use ort::session::{Session, SessionOutputs};
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};

use super::latent::LatentAxes;
use super::manifest::{Dimension, GraphSpec, Manifest, TensorSpec, Vocabulary, describe};
use super::random::SeededRandom;
use super::runtime::{Provider, ProviderChoice, Runtime};
use super::tokens::tokens_to_notes;
use super::{ModelError, ModelResult};
use crate::knobs::PartKnobs;
use crate::pattern::{PHRASE_STEPS, Part, PartPhrase};

/// Stream id of token sampling (the latent draw uses another).
const SAMPLING_STREAM: u64 = 2;

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
    decoder_init: Session,
    decoder_step: Session,
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
        let open = |spec: &GraphSpec| -> ModelResult<(Session, Provider, Option<String>)> {
            let path = Manifest::graph_path(folder, spec);
            if !path.is_file() {
                return Err(ModelError::Unreadable {
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
                    path,
                });
            }
            let opened =
                runtime
                    .open(&path, choice)
                    .map_err(|source| ModelError::GraphUnloadable {
                        path: path.clone(),
                        message: source.to_string(),
                    })?;
            check_signature(&opened.0, spec, &path)?;
            Ok(opened)
        };
        let (encoder, _, _) = open(&manifest.graphs.encoder)?;
        let (decoder_init, _, _) = open(&manifest.graphs.decoder_init)?;
        let (decoder_step, provider, provider_note) = open(&manifest.graphs.decoder_step)?;
        Ok(PartModel {
            part,
            folder: folder.to_path_buf(),
            manifest,
            axes,
            provider,
            provider_note,
            encoder,
            decoder_init,
            decoder_step,
        })
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

    /// Decodes `z` step by step at `temperature`, sampling with the seed's
    /// stream; returns one token per 16th step.
    pub fn decode_tokens(
        &mut self,
        z: &[f32],
        seed: u32,
        temperature: f32,
    ) -> ModelResult<Vec<i64>> {
        // The conditioning and token tensors are made once and read by every
        // step; each step's state outputs are handed straight back as the
        // next step's inputs, so nothing is copied between steps.
        let z = Tensor::from_array(([1usize, self.manifest.latent_size], z.to_vec()))?;
        let mut init = self.decoder_init.run(ort::inputs!["z" => z])?;
        let (mut h, mut c) = (take_output(&mut init, "h")?, take_output(&mut init, "c")?);
        let conditioning = take_output(&mut init, "conditioning")?;
        drop(init);
        let mut token = Tensor::from_array(([1usize], vec![self.manifest.start_token]))?;
        let mut random = SeededRandom::new(seed, self.part.index(), SAMPLING_STREAM);
        let mut tokens = Vec::with_capacity(PHRASE_STEPS);
        for _ in 0..PHRASE_STEPS {
            let mut outputs = self.decoder_step.run(ort::inputs![
                "token" => &token,
                "conditioning" => &conditioning,
                "h" => &h,
                "c" => &c,
            ])?;
            let logits = outputs["logits"].try_extract_tensor::<f32>()?.1;
            if logits.iter().any(|l| !l.is_finite()) {
                return Err(ModelError::NotFinite {
                    folder: self.folder.clone(),
                });
            }
            let next = random.sample_logits(logits, temperature) as i64;
            h = take_output(&mut outputs, "h_out")?;
            c = take_output(&mut outputs, "c_out")?;
            token.extract_tensor_mut().1[0] = next;
            tokens.push(next);
        }
        Ok(tokens)
    }

    /// Decodes the phrase of latent `z` into `out`, sampling at
    /// `temperature` with the seed's stream.
    pub fn decode(
        &mut self,
        z: &[f32],
        seed: u32,
        temperature: f32,
        out: &mut PartPhrase,
    ) -> ModelResult<()> {
        let tokens = self.decode_tokens(z, seed, temperature)?;
        tokens_to_notes(&self.manifest.vocabulary, &tokens, out);
        Ok(())
    }

    /// Encoder mean of one window of tokens (MIDI import uses it to find the
    /// latent of a musician's own pattern).
    pub fn encode(&mut self, tokens: &[i64]) -> ModelResult<Vec<f32>> {
        let outputs = self
            .encoder
            .run(ort::inputs!["tokens" => Tensor::from_array(([1usize, tokens.len()], tokens.to_vec()))?])?;
        Ok(outputs["mu"].try_extract_tensor::<f32>()?.1.to_vec())
    }
}

/// Takes output `name` out of a run's outputs (the signature check on load
/// makes sure that it is there).
fn take_output(outputs: &mut SessionOutputs<'_>, name: &str) -> ModelResult<DynValue> {
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
