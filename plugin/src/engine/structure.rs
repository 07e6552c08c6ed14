//! WORKER THREAD ONLY: context transfer with the melody's Transformer VAE
//! (Jiang et al. 2020; `models/README.md`, "Transformer VAE"). Its latent is
//! one latent per bar, each read in the context of the bars before it.
//! Following a clip's structure, the melody keeps its own bar latents where
//! the clip brings new material; where the clip repeats or varies an earlier
//! bar, the melody's latent of that bar is moved as the clip's moves, and a
//! repeat is played from that bar's embedding, so the melody repeats and
//! varies its own material the way the clip does (see [`follow`]).

use std::path::Path;

use super::manifest::FIRST_NOTE_ON_TOKEN;
use super::model::PartModel;
use super::runtime::{ProviderChoice, Runtime};
use super::tokens::{NO_EVENT, NOTE_OFF};
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

/// A bar varies an earlier one when they agree on at least this share of
/// 16th steps (a repeat agrees on all of them).
pub const VARIATION_AGREEMENT: f32 = 0.75;

/// A bar of a clip that repeats or varies an earlier bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reference {
    /// The bar, from 0.
    pub bar: usize,
    /// The earlier bar it agrees with most (the first of equals).
    pub earlier: usize,
    /// The share of steps on which they agree (1: a repeat, note for note).
    pub agreement: f32,
}

/// Every bar of `tokens` (16 steps a bar) with a note-on that agrees with
/// an earlier bar on [`VARIATION_AGREEMENT`] of its steps or more; a bar
/// without a note-on refers to nothing (silence is no material).
pub fn references(tokens: &[i64]) -> Vec<Reference> {
    let bars: Vec<Vec<i64>> = tokens
        .chunks_exact(STEPS_PER_BAR)
        .map(own_material)
        .collect();
    let agreement = |a: &[i64], b: &[i64]| {
        a.iter().zip(b).filter(|(a, b)| a == b).count() as f32 / STEPS_PER_BAR as f32
    };
    (1..bars.len())
        .filter(|&bar| bars[bar].iter().any(|&token| token >= FIRST_NOTE_ON_TOKEN))
        .filter_map(|bar| {
            let mut best: Option<(usize, f32)> = None;
            for earlier in 0..bar {
                let agrees = agreement(&bars[earlier], &bars[bar]);
                if best.is_none_or(|(_, most)| agrees > most) {
                    best = Some((earlier, agrees));
                }
            }
            let (earlier, agreement) = best?;
            (agreement >= VARIATION_AGREEMENT).then_some(Reference {
                bar,
                earlier,
                agreement,
            })
        })
        .collect()
}

/// A bar's tokens as its own material: a note-off before its first note-on
/// only ends what the bar before left sounding, so it counts as a rest (a
/// bar repeated after a held note is still a repeat).
fn own_material(bar: &[i64]) -> Vec<i64> {
    let first_note = bar.iter().position(|&token| token >= FIRST_NOTE_ON_TOKEN);
    bar.iter()
        .enumerate()
        .map(|(step, &token)| match first_note {
            Some(first) if step < first && token == NOTE_OFF => NO_EVENT,
            _ => token,
        })
        .collect()
}

/// The bars of `tokens` that repeat an earlier bar note for note, with the
/// first bar they repeat.
pub fn repeats(tokens: &[i64]) -> Vec<(usize, usize)> {
    references(tokens)
        .into_iter()
        .filter(|reference| reference.agreement >= 1.0)
        .map(|reference| (reference.bar, reference.earlier))
        .collect()
}

/// The latent and bar sources of a melody (bar latents `content`, one after
/// another) following a clip (its bar latents `clip`, its tokens `tokens`):
/// a bar that repeats or varies an earlier one takes the melody's latent of
/// that bar, moved as the clip moves from that bar to this one; a repeat is
/// also played from that bar's embedding (its source), so that it comes
/// back note for note where the chords do. Other bars keep the melody's own.
pub fn follow(content: &[f32], clip: &[f32], tokens: &[i64]) -> (Vec<f32>, Vec<u8>) {
    let bars = tokens.len() / STEPS_PER_BAR;
    let size = content.len() / bars.max(1);
    let mut latent = content.to_vec();
    let mut sources: Vec<u8> = (0..bars as u8).collect();
    for Reference {
        bar,
        earlier,
        agreement,
    } in references(tokens)
    {
        for value in 0..size {
            let (here, there) = (bar * size + value, earlier * size + value);
            latent[here] = latent[there] + clip[here] - clip[there];
        }
        if agreement >= 1.0 {
            sources[bar] = sources[earlier];
        }
    }
    (latent, sources)
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
        let (latent, bar_sources) = follow(&own, &clips, &looped);
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
            latent,
            bar_sources,
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
