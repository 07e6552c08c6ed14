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
use crate::stored::{FollowedStructure, StoredLatents, scene_name};

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
    /// Reads the .mid clip at `path` (up to 16 bars) and makes the melody
    /// follow its structure (see [`Engine::follow_tokens`]).
    pub fn follow_structure(
        &mut self,
        path: &Path,
        knobs: &KnobSnapshot,
        stored: &StoredLatents,
    ) -> Result<FollowedStructure, ClipImportError> {
        let model = self.structure_model.as_ref().map_err(no_model)?;
        let (bars, vocabulary) = (model.bars(), model.vocabulary().clone());
        let clip = midi_clip::read_clip_bars(path, Part::Melody, &vocabulary, bars as u64)?;
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.follow_tokens(name, clip.summary(), &clip.tokens, knobs, stored)
    }

    /// Makes the melody follow the structure of the melody stored in scene
    /// `scene` (0: A, 1: B), as it played when stored (knobs at rest), over
    /// the progression (see [`Engine::follow_tokens`]).
    pub fn follow_scene_structure(
        &mut self,
        scene: usize,
        knobs: &KnobSnapshot,
        stored: &StoredLatents,
    ) -> Result<FollowedStructure, ClipImportError> {
        let letter = scene_name(scene);
        let stored_scene = stored.scenes.get(scene).and_then(Option::as_ref);
        let index = Part::Melody.index();
        let Some(scene_latents) = stored_scene.filter(|s| !s.latents[index].is_empty()) else {
            return Err(ClipImportError::NoScene(letter));
        };
        let latent = (
            scene_latents.latents[index].as_slice(),
            scene_latents.long[index],
        );
        let tokens = self.melody_tokens(knobs, stored, Some(latent))?;
        let bars = tokens.len() / STEPS_PER_BAR;
        let summary = format!("its melody's {bars} bars");
        self.follow_tokens(format!("scene {letter}"), summary, &tokens, knobs, stored)
    }

    /// Makes the melody follow the structure of `clip` (tokens, looped to
    /// 16 bars): the melody of `knobs`' seed (or its imported clip) at rest,
    /// encoded by the Transformer VAE over the progression, keeps its bar
    /// latents where the clip has new bars, and repeats and varies them
    /// where the clip repeats and varies its own (see [`follow`]). Stored,
    /// it plays in 4- to 16-bar phrases, and the melody's knobs move it.
    fn follow_tokens(
        &mut self,
        name: String,
        summary: String,
        clip: &[i64],
        knobs: &KnobSnapshot,
        stored: &StoredLatents,
    ) -> Result<FollowedStructure, ClipImportError> {
        let bars = self.structure_model.as_ref().map_err(no_model)?.bars();
        let steps = bars * STEPS_PER_BAR;
        let looped: Vec<i64> = clip.iter().copied().cycle().take(steps).collect();
        let progression = harmony(knobs, stored).0;
        let chords: Vec<Chord> = (0..steps).map(|step| progression.chord_at(step)).collect();
        let content = self.melody_tokens(knobs, stored, None)?;
        let content: Vec<i64> = content.iter().copied().cycle().take(steps).collect();
        let model = self
            .structure_model
            .as_mut()
            .map_err(|error| no_model(error))?;
        let own = model.encode(&content, &chords)?;
        let clips = model.encode(&looped, &chords)?;
        let repeated = repeats(&looped).len();
        let (latent, bar_sources) = follow(&own, &clips, &looped);
        Ok(FollowedStructure {
            name,
            summary: format!("{summary}; {repeated} of {bars} bars repeat an earlier one"),
            latent,
            bar_sources,
        })
    }

    /// The melody as it plays with its knobs at rest (the knobs move the
    /// followed structure afterwards, not twice): 16 bars from the seed (or
    /// its imported clip), or from `latent` (a scene's, with whether it is
    /// the 16-bar model's; a 2-bar latent plays the progression's length).
    fn melody_tokens(
        &mut self,
        knobs: &KnobSnapshot,
        stored: &StoredLatents,
        latent: Option<(&[f32], bool)>,
    ) -> Result<Vec<i64>, ClipImportError> {
        let mut plain = stored.clone();
        plain.structure = None;
        let long = latent.is_none_or(|(_, long)| long);
        let mut at_rest = KnobSnapshot {
            phrase: if long {
                PhraseLength::Bars(LONG_MODEL_BARS)
            } else {
                PhraseLength::Progression
            },
            // A scene's own melody, not the morph.
            scenes_on: knobs.scenes_on && latent.is_none(),
            ..*knobs
        };
        let melody = &mut at_rest.parts[Part::Melody.index()];
        *melody = PartKnobs {
            temperature: melody.temperature,
            ..PartKnobs::default()
        };
        let missing = |reason: String| ClipImportError::NoModel {
            part: "melody",
            reason,
        };
        let mut inputs = self
            .part_inputs(Part::Melody, &at_rest, &plain)
            .ok_or_else(|| missing("neither melody model loaded".into()))?;
        if let Some((latent, long)) = latent {
            if inputs.long != long || inputs.latent.len() != latent.len() {
                return Err(missing(
                    "the model that stored the scene is not loaded".into(),
                ));
            }
            inputs.latent = latent.to_vec();
        }
        let index = Part::Melody.index();
        let slot = if inputs.long {
            &mut self.long_parts[index]
        } else {
            &mut self.parts[index]
        };
        let model = slot.as_mut().map_err(|error| missing(error.to_string()))?;
        Ok(model.decode_tokens(&inputs, &[], inputs.bars)?)
    }
}

/// The refusal when the Transformer VAE did not load.
fn no_model(error: &ModelError) -> ClipImportError {
    ClipImportError::NoModel {
        part: "melody's Transformer VAE",
        reason: error.to_string(),
    }
}
