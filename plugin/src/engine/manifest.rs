//! `manifest.json`: what a model folder claims to be. Nothing in it is trusted:
//! [`Manifest::load`] checks every field against what the sequencer can play
//! and returns the graph signatures that the ONNX files must then match.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ModelError;
use crate::harmony::CHROMA_SIZE;
use crate::pattern::{DRUM_CLASSES, LONG_MODEL_BARS, MODEL_BARS, Part, STEPS_PER_BAR};

/// The first note-on token of a melodic vocabulary: it starts `min_pitch`
/// (tokens 0 and 1 are note-off and no-event).
pub const FIRST_NOTE_ON_TOKEN: i64 = 2;

/// The oldest manifest format this build reads (3: chord inputs).
pub const FORMAT_VERSION: u32 = 3;
/// The format of a hierarchical model (4: a conductor graph); flat models
/// stay at [`FORMAT_VERSION`].
pub const HIERARCHICAL_FORMAT_VERSION: u32 = 4;
/// The format of a Transformer VAE (5): a hierarchical model whose z is one
/// latent per bar, one after another (see [`BarLatents`]).
pub const TRANSFORMER_FORMAT_VERSION: u32 = 5;

/// The parsed and checked manifest of one model folder.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// Manifest format; newer ones are refused with a plain message.
    pub format_version: u32,
    /// Display name, e.g. `drums_2bar`.
    pub name: String,
    /// Which part the model plays: `drums`, `bass` or `melody`.
    pub part: String,
    /// How tokens map to notes.
    pub vocabulary: Vocabulary,
    /// Token fed to the first decoder step.
    pub start_token: i64,
    /// 16th steps per bar (always 16).
    pub steps_per_bar: usize,
    /// Bars per decoded phrase.
    pub bars: usize,
    /// Size of the latent vector z.
    pub latent_size: usize,
    /// Whether the model has a conductor: z -> one embedding per bar, each
    /// bar decoded from its embedding (format 4).
    pub hierarchical: bool,
    /// A Transformer VAE's bar latents (format 5; `None` before).
    #[serde(default)]
    pub bar_latents: Option<BarLatents>,
    /// Decoder LSTM shape, which fixes the state tensors' shapes.
    pub decoder: DecoderShape,
    /// The chord input of a chord-conditioned model (`None`: it takes none).
    #[serde(default)]
    pub chords: Option<ChordInput>,
    /// The ONNX graphs and their signatures.
    pub graphs: Graphs,
    /// How an encoded clip's latent is refined with the latent gradient
    /// graph (`None`: the encoder mean is used as it is).
    #[serde(default)]
    pub refinement: Option<Refinement>,
    /// File name of the latent axes, beside the manifest.
    pub latent_axes: String,
}

/// Adam on a clip's latent: the encoder mean, then `steps` steps of
/// `learning_rate` down the latent gradient graph's gradient (the clip's
/// training loss: reconstruction plus the KL weight times the KL), as the
/// exporter scored it.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
pub struct Refinement {
    /// Adam steps.
    pub steps: usize,
    /// Adam's step size.
    pub learning_rate: f32,
}

/// The most refinement steps a manifest may ask for: each costs one run of
/// the latent gradient graph (about 4 ms), and a clip import should take a
/// moment, not seconds.
pub const MAX_REFINEMENT_STEPS: usize = 200;

/// Token vocabularies (MusicVAE's).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Vocabulary {
    /// One token per step = the set of drum classes hit (bit `i` = class `i`).
    DrumClasses {
        /// Number of tokens, `2^classes`.
        size: usize,
        /// The classes in bit order, with the GM pitch each one plays.
        classes: Vec<DrumClass>,
    },
    /// One token per step: note-off, no event, or the note-on of a pitch.
    Melodic {
        /// Number of tokens.
        size: usize,
        /// Token that ends the sounding note.
        note_off: i64,
        /// Token that holds or rests.
        no_event: i64,
        /// Pitch of the first note-on token (token 2).
        min_pitch: u8,
        /// Pitch of the last note-on token.
        max_pitch: u8,
    },
}

/// A drum class and the General MIDI pitch it plays.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct DrumClass {
    /// e.g. `kick`.
    pub name: String,
    /// e.g. 36.
    pub pitch: u8,
    /// Pitches of an imported clip that count as this class (older
    /// manifests without the list match `pitch` only).
    #[serde(default)]
    pub input_pitches: Vec<u8>,
}

impl DrumClass {
    /// Whether an imported note of `pitch` is a hit of this class.
    pub fn hears(&self, pitch: u8) -> bool {
        pitch == self.pitch || self.input_pitches.contains(&pitch)
    }
}

impl Vocabulary {
    /// Number of tokens.
    pub fn size(&self) -> usize {
        match self {
            Vocabulary::DrumClasses { size, .. } | Vocabulary::Melodic { size, .. } => *size,
        }
    }
}

/// The per-bar latents of a Transformer VAE: z holds `bars` of them, one
/// after another, and its conductor (masked attention over them) gives each
/// bar an embedding of `bar_embedding_size`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
pub struct BarLatents {
    /// Values of one bar's latent.
    pub size: usize,
    /// Values of a bar's embedding (what the bar decoder starts from).
    pub bar_embedding_size: usize,
}

/// How a chord-conditioned model reads the chord of each step.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ChordInput {
    /// Inputs per step: [`CHROMA_SIZE`] (12 pitch classes and no-chord).
    pub size: usize,
}

/// Decoder LSTM shape.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
pub struct DecoderShape {
    /// Stacked LSTM layers.
    pub layers: usize,
    /// Units per layer.
    pub hidden: usize,
}

/// The step-wise decoding graphs (and the encoder, which MIDI import uses).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Graphs {
    /// tokens (and chords) -> mu, sigma.
    pub encoder: GraphSpec,
    /// Hierarchical models: z -> bar_embeddings, one per bar.
    #[serde(default)]
    pub conductor: Option<GraphSpec>,
    /// z (hierarchical: a bar's embedding) -> h, c, conditioning (its share
    /// of the first layer's gates, once per phrase or bar).
    pub decoder_init: GraphSpec,
    /// token, (chord,) conditioning, h, c -> logits, h_out, c_out.
    pub decoder_step: GraphSpec,
    /// Flat models: tokens, (chords,) z, sigma -> the gradient of the
    /// window's training loss with respect to z (one window at a time).
    #[serde(default)]
    pub latent_gradient: Option<GraphSpec>,
}

/// One ONNX file and its signature.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct GraphSpec {
    /// File name beside the manifest.
    pub file: String,
    /// Inputs in order.
    pub inputs: Vec<TensorSpec>,
    /// Outputs in order.
    pub outputs: Vec<TensorSpec>,
}

/// Name, element type and shape of a graph input or output.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TensorSpec {
    /// Tensor name in the graph.
    pub name: String,
    /// `int64` or `float32`.
    pub dtype: String,
    /// Fixed sizes, or `"batch"` for the dynamic batch axis.
    pub shape: Vec<Dimension>,
}

/// One axis of a tensor shape.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Dimension {
    /// A size fixed at export.
    Fixed(i64),
    /// A named dynamic axis; only `batch` is allowed.
    Named(String),
}

impl Manifest {
    /// Reads `<folder>/manifest.json` and checks it describes a model of
    /// `part` that this version can play.
    pub fn load(folder: &Path, part: Part) -> Result<Manifest, ModelError> {
        let path = folder.join("manifest.json");
        let manifest: Manifest = read_manifest(&path)?;
        manifest.check(&path, part)?;
        Ok(manifest)
    }

    fn check(&self, path: &Path, part: Part) -> Result<(), ModelError> {
        let wrong = |detail: String| ModelError::ManifestContent {
            path: path.to_path_buf(),
            detail,
        };
        let newest = TRANSFORMER_FORMAT_VERSION;
        if self.format_version < FORMAT_VERSION {
            return Err(wrong(format!(
                "format version {} is older than this version of Latent Trio reads ({FORMAT_VERSION}); \
                 export the model again with this version's models/ pipeline",
                self.format_version
            )));
        }
        if self.format_version > newest {
            return Err(wrong(format!(
                "format version {} is not supported (this version of Latent Trio reads versions {FORMAT_VERSION} to {newest}); \
                 a newer Latent Trio plays it",
                self.format_version
            )));
        }
        if Part::from_name(&self.part) != Some(part) {
            return Err(wrong(format!(
                "it is a \"{}\" model, but this folder is for {}",
                self.part,
                part.name()
            )));
        }
        let playable = if self.hierarchical {
            self.bars == LONG_MODEL_BARS && self.format_version >= HIERARCHICAL_FORMAT_VERSION
        } else {
            self.bars == MODEL_BARS
        };
        if self.steps_per_bar != STEPS_PER_BAR || !playable {
            return Err(wrong(format!(
                "it decodes {} bars of {} steps (hierarchical: {}, format {}); this version plays flat {MODEL_BARS}-bar \
                 models and hierarchical {LONG_MODEL_BARS}-bar ones (format {HIERARCHICAL_FORMAT_VERSION} or later) of {STEPS_PER_BAR} steps",
                self.bars, self.steps_per_bar, self.hierarchical, self.format_version
            )));
        }
        let transformer = self.format_version == TRANSFORMER_FORMAT_VERSION;
        match self.bar_latents {
            Some(bar_latents) if transformer => {
                if !self.hierarchical
                    || !(1..=4096).contains(&bar_latents.bar_embedding_size)
                    || bar_latents.size * self.bars != self.latent_size
                {
                    return Err(wrong(format!(
                        "a Transformer VAE's latent ({}) must be its {} bars' latents of {} values one after another",
                        self.latent_size, self.bars, bar_latents.size
                    )));
                }
            }
            None if !transformer => {}
            _ => {
                return Err(wrong(format!(
                    "bar latents come with format {TRANSFORMER_FORMAT_VERSION}, and only with it (found format {})",
                    self.format_version
                )));
            }
        }
        if !(1..=4096).contains(&self.latent_size)
            || !(1..=16).contains(&self.decoder.layers)
            || !(1..=8192).contains(&self.decoder.hidden)
        {
            return Err(wrong(format!(
                "implausible sizes: latent {}, decoder {}x{}",
                self.latent_size, self.decoder.layers, self.decoder.hidden
            )));
        }
        match (&self.vocabulary, part) {
            (Vocabulary::DrumClasses { size, classes }, Part::Drums) => {
                if classes.len() != DRUM_CLASSES || *size != 1 << DRUM_CLASSES {
                    return Err(wrong(format!(
                        "a drum vocabulary needs {DRUM_CLASSES} classes and {} tokens, found {} and {size}",
                        1 << DRUM_CLASSES,
                        classes.len()
                    )));
                }
                if let Some(class) = classes.iter().find(|c| c.pitch > 127) {
                    return Err(wrong(format!(
                        "drum class {} has pitch {}",
                        class.name, class.pitch
                    )));
                }
            }
            (
                Vocabulary::Melodic {
                    size,
                    note_off,
                    no_event,
                    min_pitch,
                    max_pitch,
                },
                Part::Bass | Part::Melody,
            ) => {
                let pitches = usize::from(max_pitch.saturating_sub(*min_pitch)) + 1;
                if *note_off != 0
                    || *no_event != 1
                    || *max_pitch > 127
                    || *size != FIRST_NOTE_ON_TOKEN as usize + pitches
                {
                    return Err(wrong(format!(
                        "a melodic vocabulary is note-off 0, no-event 1, then one token per pitch; found size {size} for pitches {min_pitch}..={max_pitch}"
                    )));
                }
            }
            _ => {
                return Err(wrong(format!(
                    "its vocabulary does not fit a {} part",
                    part.name()
                )));
            }
        }
        if let Some(chords) = &self.chords
            && chords.size != CHROMA_SIZE
        {
            return Err(wrong(format!(
                "its chord input has {} values a step; this version feeds {CHROMA_SIZE} (12 pitch classes and no-chord)",
                chords.size
            )));
        }
        if self.start_token != self.vocabulary.size() as i64 {
            return Err(wrong(format!(
                "start token {} should be the vocabulary size {}",
                self.start_token,
                self.vocabulary.size()
            )));
        }
        let expected = self.expected_graphs();
        if self.graphs.conductor.is_some() != self.hierarchical {
            return Err(wrong(
                "a hierarchical model needs a conductor graph, and only it has one".into(),
            ));
        }
        if self.graphs.latent_gradient.is_some() != self.refinement.is_some() {
            return Err(wrong(
                "a latent gradient graph and its refinement settings come together".into(),
            ));
        }
        if self.hierarchical && self.graphs.latent_gradient.is_some() {
            return Err(wrong(
                "only a 2-bar model refines its latents with a latent gradient graph".into(),
            ));
        }
        if let Some(refinement) = self.refinement
            && (refinement.steps > MAX_REFINEMENT_STEPS
                || !(refinement.learning_rate > 0.0 && refinement.learning_rate <= 10.0))
        {
            return Err(wrong(format!(
                "its refinement of {} steps of {} is out of range (at most {MAX_REFINEMENT_STEPS} steps of a step size above 0 and up to 10)",
                refinement.steps, refinement.learning_rate
            )));
        }
        let conductor = self
            .graphs
            .conductor
            .as_ref()
            .zip(expected.conductor.as_ref());
        let latent_gradient = self
            .graphs
            .latent_gradient
            .as_ref()
            .zip(expected.latent_gradient.as_ref());
        for (found, expected) in [
            (&self.graphs.encoder, &expected.encoder),
            (&self.graphs.decoder_init, &expected.decoder_init),
            (&self.graphs.decoder_step, &expected.decoder_step),
        ]
        .into_iter()
        .chain(conductor)
        .chain(latent_gradient)
        {
            if found.inputs != expected.inputs || found.outputs != expected.outputs {
                return Err(wrong(format!(
                    "graph {} should have inputs {} and outputs {}, but the manifest says inputs {} and outputs {}",
                    found.file,
                    describe(&expected.inputs),
                    describe(&expected.outputs),
                    describe(&found.inputs),
                    describe(&found.outputs)
                )));
            }
            if found.file.contains(['/', '\\']) || found.file.contains("..") {
                return Err(wrong(format!(
                    "graph file {} must be a plain file name in the model folder",
                    found.file
                )));
            }
        }
        Ok(())
    }

    /// The signatures the model contract prescribes for these sizes.
    fn expected_graphs(&self) -> Graphs {
        let batch = || Dimension::Named("batch".into());
        let fixed = |n: usize| Dimension::Fixed(n as i64);
        let tensor = |name: &str, dtype: &str, shape: Vec<Dimension>| TensorSpec {
            name: name.into(),
            dtype: dtype.into(),
            shape,
        };
        let z = || tensor("z", "float32", vec![batch(), fixed(self.latent_size)]);
        // A hierarchical model's bar decoder starts from each bar's embedding.
        let bar_embedding = tensor(
            "bar_embedding",
            "float32",
            vec![batch(), fixed(self.bar_embedding_size())],
        );
        // What z adds to the first layer's gates, computed once per phrase.
        let conditioning = || {
            tensor(
                "conditioning",
                "float32",
                vec![batch(), fixed(4 * self.decoder.hidden)],
            )
        };
        let state = |name: &str| {
            tensor(
                name,
                "float32",
                vec![
                    fixed(self.decoder.layers),
                    batch(),
                    fixed(self.decoder.hidden),
                ],
            )
        };
        let graph = |file: &str, inputs, outputs| GraphSpec {
            file: file.into(),
            inputs,
            outputs,
        };
        let steps = self.steps_per_bar * self.bars;
        // A chord-conditioned model reads the chords of the window it
        // encodes, and the chord of each step it decodes.
        let mut encoder_inputs = vec![tensor("tokens", "int64", vec![batch(), fixed(steps)])];
        let mut step_inputs = vec![tensor("token", "int64", vec![batch()])];
        if let Some(chords) = &self.chords {
            encoder_inputs.push(tensor(
                "chords",
                "float32",
                vec![batch(), fixed(steps), fixed(chords.size)],
            ));
            step_inputs.push(tensor(
                "chord",
                "float32",
                vec![batch(), fixed(chords.size)],
            ));
        }
        step_inputs.extend([conditioning(), state("h"), state("c")]);
        let conductor = self.graphs.conductor.as_ref().map(|spec| {
            graph(
                &spec.file,
                vec![z()],
                vec![tensor(
                    "bar_embeddings",
                    "float32",
                    vec![batch(), fixed(self.bars), fixed(self.bar_embedding_size())],
                )],
            )
        });
        // One window: tokens and chords as the encoder reads them, z and sigma.
        let one = |t: &TensorSpec| TensorSpec {
            shape: std::iter::once(fixed(1))
                .chain(t.shape[1..].iter().cloned())
                .collect(),
            ..t.clone()
        };
        let latent = |name: &str| tensor(name, "float32", vec![fixed(1), fixed(self.latent_size)]);
        let latent_gradient = self.graphs.latent_gradient.as_ref().map(|spec| {
            let mut inputs: Vec<TensorSpec> = encoder_inputs.iter().map(one).collect();
            inputs.extend([latent("z"), latent("sigma")]);
            graph(&spec.file, inputs, vec![latent("gradient")])
        });
        Graphs {
            conductor,
            latent_gradient,
            encoder: graph(
                &self.graphs.encoder.file,
                encoder_inputs,
                vec![
                    tensor("mu", "float32", vec![batch(), fixed(self.latent_size)]),
                    tensor("sigma", "float32", vec![batch(), fixed(self.latent_size)]),
                ],
            ),
            decoder_init: graph(
                &self.graphs.decoder_init.file,
                vec![if self.hierarchical {
                    bar_embedding
                } else {
                    z()
                }],
                vec![state("h"), state("c"), conditioning()],
            ),
            decoder_step: graph(
                &self.graphs.decoder_step.file,
                step_inputs,
                vec![
                    tensor(
                        "logits",
                        "float32",
                        vec![batch(), fixed(self.vocabulary.size())],
                    ),
                    state("h_out"),
                    state("c_out"),
                ],
            ),
        }
    }

    /// Values of a bar's embedding in a hierarchical model (the latent's size,
    /// except in a Transformer VAE).
    pub fn bar_embedding_size(&self) -> usize {
        self.bar_latents.map_or(self.latent_size, |bar_latents| {
            bar_latents.bar_embedding_size
        })
    }

    /// Path of a graph file.
    pub fn graph_path(folder: &Path, graph: &GraphSpec) -> PathBuf {
        folder.join(&graph.file)
    }
}

/// Reads and parses the manifest at `path` (of any model family).
pub(super) fn read_manifest<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ModelError::ManifestSyntax {
        path: path.to_path_buf(),
        source,
    })
}

/// `tokens: int64[batch, 32]`-style summary for error messages.
pub fn describe(tensors: &[TensorSpec]) -> String {
    let one = |t: &TensorSpec| {
        let shape: Vec<String> = t
            .shape
            .iter()
            .map(|d| match d {
                Dimension::Fixed(n) => n.to_string(),
                Dimension::Named(name) => name.clone(),
            })
            .collect();
        format!("{}: {}[{}]", t.name, t.dtype, shape.join(", "))
    };
    format!(
        "({})",
        tensors.iter().map(one).collect::<Vec<_>>().join(", ")
    )
}
