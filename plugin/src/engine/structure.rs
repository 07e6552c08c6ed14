//! WORKER THREAD ONLY: context transfer with the melody's Transformer VAE
//! (Jiang et al. 2020; `models/README.md`, "Transformer VAE"). Its latent is
//! one latent per bar, each read in the context of the bars before it, so a
//! bar that repeats an earlier one is coded by reference to it. Following a
//! clip's structure, the melody keeps its own latents on the bars where the
//! clip brings new material and takes the clip's on the bars where the clip
//! repeats itself: those refer back, so the melody repeats its own bars where
//! the clip repeats its own.

use std::path::Path;

use super::model::PartModel;
use super::runtime::{ProviderChoice, Runtime};
use super::{ClipImportError, Engine, ModelError, ModelResult, harmony};
use crate::harmony::Chord;
use crate::knobs::{KnobSnapshot, PartKnobs, PhraseLength};
use crate::midi_clip;
use crate::pattern::{LONG_MODEL_BARS, Part, STEPS_PER_BAR};
use crate::stored::{FollowedStructure, StoredLatents};

/// Folder of the melody's Transformer VAE.
pub const STRUCTURE_MODEL_FOLDER: &str = "melody_transformer";

/// Loads the Transformer VAE from `models`, refusing a model without bar
/// latents (any other 16-bar model would load, and transfer nothing).
pub(super) fn load_model(
    runtime: &Runtime,
    models: &Path,
    choice: ProviderChoice,
) -> ModelResult<PartModel> {
    let folder = models.join(STRUCTURE_MODEL_FOLDER);
    let model = PartModel::load(runtime, &folder, Part::Melody, choice)?;
    if model.manifest.bar_latents.is_none() {
        return Err(ModelError::ManifestContent {
            path: folder.join("manifest.json"),
            detail: "it is not a Transformer VAE (format 5, one latent per bar)".into(),
        });
    }
    Ok(model)
}

/// Every bar of `tokens` (16 steps a bar) that repeats an earlier bar note
/// for note, with the first bar it repeats; a bar without a note-on repeats
/// nothing (silence is no material).
pub fn repeats(tokens: &[i64]) -> Vec<(usize, usize)> {
    let bars: Vec<&[i64]> = tokens.chunks_exact(STEPS_PER_BAR).collect();
    (1..bars.len())
        .filter(|&bar| bars[bar].iter().any(|&token| token >= 2))
        .filter_map(|bar| {
            (0..bar)
                .find(|&earlier| bars[earlier] == bars[bar])
                .map(|earlier| (bar, earlier))
        })
        .collect()
}

/// Per bar of `tokens`: whether it brings new material (repeats no earlier bar).
pub fn new_bars(tokens: &[i64]) -> Vec<bool> {
    let mut fresh = vec![true; tokens.len() / STEPS_PER_BAR];
    for (bar, _) in repeats(tokens) {
        fresh[bar] = false;
    }
    fresh
}

/// The latent that plays `content`'s bar latents on the bars marked `fresh`
/// and `structure`'s on the others (bar latents of `content.len() /
/// fresh.len()` values, one after another).
pub fn transfer(content: &[f32], structure: &[f32], fresh: &[bool]) -> Vec<f32> {
    let size = content.len() / fresh.len().max(1);
    content
        .chunks_exact(size)
        .zip(structure.chunks_exact(size))
        .zip(fresh)
        .flat_map(|((content, structure), &fresh)| if fresh { content } else { structure })
        .copied()
        .collect()
}

impl Engine {
    /// Reads the .mid clip at `path` (up to 16 bars, looped to 16) and makes
    /// the melody follow its structure: the melody of `knobs`' seed (or its
    /// imported clip) at rest, encoded by the Transformer VAE over the
    /// progression, keeps its bar latents where the clip has new bars and
    /// takes the clip's where the clip repeats itself. Stored, it plays in
    /// 4- to 16-bar phrases, and the melody's knobs move it.
    pub fn follow_structure(
        &mut self,
        path: &Path,
        knobs: &KnobSnapshot,
        stored: &StoredLatents,
    ) -> Result<FollowedStructure, ClipImportError> {
        let no_model = |reason: String| ClipImportError::NoModel {
            part: "melody's Transformer VAE",
            reason,
        };
        let bars = match &self.structure_model {
            Ok(model) => model.bars(),
            Err(error) => return Err(no_model(error.to_string())),
        };
        let vocabulary = self
            .structure_model
            .as_ref()
            .map_err(|error| no_model(error.to_string()))?
            .vocabulary()
            .clone();
        let clip = midi_clip::read_clip_bars(path, Part::Melody, &vocabulary, bars as u64)?;
        let steps = bars * STEPS_PER_BAR;
        let looped: Vec<i64> = clip.tokens.iter().copied().cycle().take(steps).collect();
        let progression = harmony(knobs, stored).0;
        let chords: Vec<Chord> = (0..steps).map(|step| progression.chord_at(step)).collect();
        let content = self.melody_at_rest(knobs, stored, bars)?;
        let model = self
            .structure_model
            .as_mut()
            .map_err(|error| no_model(error.to_string()))?;
        let own = model.encode(&content, &chords)?;
        let clips = model.encode(&looped, &chords)?;
        let repeated = repeats(&looped);
        Ok(FollowedStructure {
            name: path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
            summary: format!(
                "{}; {} of {bars} bars repeat an earlier one",
                clip.summary(),
                repeated.len()
            ),
            latent: transfer(&own, &clips, &new_bars(&looped)),
        })
    }

    /// The melody's first `bars` bars as it plays with its knobs at rest
    /// (the knobs move the followed structure afterwards, not twice).
    fn melody_at_rest(
        &mut self,
        knobs: &KnobSnapshot,
        stored: &StoredLatents,
        bars: usize,
    ) -> Result<Vec<i64>, ClipImportError> {
        let mut plain = stored.clone();
        plain.structure = None;
        let mut at_rest = KnobSnapshot {
            phrase: PhraseLength::Bars(LONG_MODEL_BARS),
            ..*knobs
        };
        let melody = &mut at_rest.parts[Part::Melody.index()];
        *melody = PartKnobs {
            temperature: melody.temperature,
            ..PartKnobs::default()
        };
        let inputs = self
            .part_inputs(Part::Melody, &at_rest, &plain)
            .ok_or_else(|| ClipImportError::NoModel {
                part: "melody",
                reason: "neither melody model loaded".into(),
            })?;
        let index = Part::Melody.index();
        let slot = if inputs.long {
            &mut self.long_parts[index]
        } else {
            &mut self.parts[index]
        };
        let model = slot.as_mut().map_err(|error| ClipImportError::NoModel {
            part: "melody",
            reason: error.to_string(),
        })?;
        Ok(model.decode_tokens(&inputs, &[], bars)?)
    }
}
