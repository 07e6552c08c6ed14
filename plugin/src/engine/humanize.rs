//! The humanize models (models/README.md, "Humanize contract"): a quantised
//! pattern in, the velocity a player gives each hit or note and (drums) how
//! far from the grid it falls, out; and the [`Feel`] knobs that decide how
//! much of that performance, and how much swing, the notes get.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;

use super::manifest::{GraphSpec, read_manifest};
use super::model::{open_graph, take_output};
use super::runtime::{ProviderChoice, Runtime};
use super::{ModelError, ModelResult};
use crate::knobs::Feel;
use crate::pattern::{
    DRUM_CLASSES, MAX_OFFSET, MODEL_STEPS, OFFSET_UNITS_PER_STEP, Part, PartPhrase, STEPS_PER_BAR,
};

/// The humanize manifest format this version reads.
pub const HUMANIZE_FORMAT_VERSION: u32 = 1;

/// A humanize model's `manifest.json`, as far as the engine needs it.
#[derive(Debug, Clone, Deserialize)]
struct HumanizeManifest {
    format_version: u32,
    family: String,
    part: String,
    steps: usize,
    steps_per_bar: usize,
    graphs: HumanizeGraphs,
}

#[derive(Debug, Clone, Deserialize)]
struct HumanizeGraphs {
    humanize: GraphSpec,
}

/// What a player does with each 16th of a pattern: per step and drum class
/// (bass and melody use class 0), the velocity and the offset from the
/// grid in 16ths.
#[derive(Debug, Clone, PartialEq)]
pub struct Performance {
    velocity: Vec<[f32; DRUM_CLASSES]>,
    offset: Vec<[f32; DRUM_CLASSES]>,
}

/// A loaded, checked humanize model for one part.
pub struct HumanizeModel {
    part: Part,
    /// The folder it came from (named in errors).
    folder: PathBuf,
    session: Session,
}

/// The folder name of `part`'s humanize model.
pub fn humanize_folder_name(part: Part) -> String {
    format!("{}_humanize", part.name())
}

impl HumanizeModel {
    /// Loads the humanize model in `folder` for `part`, checking its
    /// manifest and its graph's signature.
    pub fn load(
        runtime: &Runtime,
        folder: &Path,
        part: Part,
        choice: ProviderChoice,
    ) -> ModelResult<HumanizeModel> {
        let path = folder.join("manifest.json");
        let manifest: HumanizeManifest = read_manifest(&path)?;
        check(&manifest, &path, part)?;
        let (session, _, _) = open_graph(runtime, folder, &manifest.graphs.humanize, choice)?;
        Ok(HumanizeModel {
            part,
            folder: folder.to_path_buf(),
            session,
        })
    }

    /// The performance of a pattern of `tokens` (a whole phrase, in model
    /// windows of [`MODEL_STEPS`]; a window repeated is run once).
    pub fn perform(&mut self, tokens: &[i64]) -> ModelResult<Performance> {
        let mut performance = Performance {
            velocity: Vec::with_capacity(tokens.len()),
            offset: Vec::with_capacity(tokens.len()),
        };
        let mut done: Vec<(&[i64], usize)> = Vec::new();
        for window in tokens.chunks(MODEL_STEPS) {
            if let Some(&(_, start)) = done.iter().find(|(seen, _)| *seen == window) {
                performance
                    .velocity
                    .extend_from_within(start..start + window.len());
                performance
                    .offset
                    .extend_from_within(start..start + window.len());
                continue;
            }
            done.push((window, performance.velocity.len()));
            self.perform_window(window, &mut performance)?;
        }
        Ok(performance)
    }

    /// Runs the graph on one window (padded with silence to its length)
    /// and appends its first `window.len()` steps.
    fn perform_window(&mut self, window: &[i64], out: &mut Performance) -> ModelResult<()> {
        let mut outputs = if self.part == Part::Drums {
            let mut hits = vec![0.0f32; MODEL_STEPS * DRUM_CLASSES];
            for (step, &token) in window.iter().enumerate() {
                for class in 0..DRUM_CLASSES {
                    hits[step * DRUM_CLASSES + class] = (token >> class & 1) as f32;
                }
            }
            let hits = Tensor::from_array(([1usize, MODEL_STEPS, DRUM_CLASSES], hits))?;
            self.session.run(ort::inputs!["hits" => hits])?
        } else {
            // Token 1 is "no event": silence.
            let mut tokens = vec![1i64; MODEL_STEPS];
            tokens[..window.len()].copy_from_slice(window);
            let tokens = Tensor::from_array(([1usize, MODEL_STEPS], tokens))?;
            self.session.run(ort::inputs!["tokens" => tokens])?
        };
        let velocity = take_output(&mut outputs, "velocity")?;
        let velocity = velocity.try_extract_tensor::<f32>()?.1;
        let classes = if self.part == Part::Drums {
            DRUM_CLASSES
        } else {
            1
        };
        let offset = if self.part == Part::Drums {
            let offset = take_output(&mut outputs, "offset")?;
            offset.try_extract_tensor::<f32>()?.1.to_vec()
        } else {
            vec![0.0; MODEL_STEPS]
        };
        if velocity.iter().chain(&offset).any(|v| !v.is_finite()) {
            return Err(ModelError::NotFinite {
                folder: self.folder.clone(),
            });
        }
        for step in 0..window.len() {
            let mut velocities = [0.0; DRUM_CLASSES];
            let mut offsets = [0.0; DRUM_CLASSES];
            for class in 0..classes {
                velocities[class] = velocity[step * classes + class];
                offsets[class] = offset[step * classes + class];
            }
            out.velocity.push(velocities);
            out.offset.push(offsets);
        }
        Ok(())
    }
}

fn check(manifest: &HumanizeManifest, path: &Path, part: Part) -> ModelResult<()> {
    let wrong = |detail: String| ModelError::ManifestContent {
        path: path.to_path_buf(),
        detail,
    };
    if manifest.format_version != HUMANIZE_FORMAT_VERSION || manifest.family != "humanize" {
        return Err(wrong(format!(
            "a \"{}\" model of format {}; this version reads humanize models of format {HUMANIZE_FORMAT_VERSION}",
            manifest.family, manifest.format_version
        )));
    }
    if Part::from_name(&manifest.part) != Some(part) {
        return Err(wrong(format!(
            "it humanizes \"{}\", but this folder is for {}",
            manifest.part,
            part.name()
        )));
    }
    if manifest.steps != MODEL_STEPS || manifest.steps_per_bar != STEPS_PER_BAR {
        return Err(wrong(format!(
            "it reads windows of {} steps of {} a bar; this version plays {MODEL_STEPS} of {STEPS_PER_BAR}",
            manifest.steps, manifest.steps_per_bar
        )));
    }
    Ok(())
}

/// Moves `notes` by `feel`: each velocity from the grid's towards the
/// performance's by the Humanize amount, each start by that share of the
/// performance's offset, every second 16th later by the swing; no note moves
/// more than [`MAX_OFFSET`]. `class_of` gives a drum note's class from its
/// pitch (bass and melody: always 0). With no performance (no humanize
/// model), only swing applies.
pub fn apply_feel(
    notes: &mut PartPhrase,
    performance: Option<&Performance>,
    feel: Feel,
    class_of: impl Fn(u8) -> Option<usize>,
) {
    let humanize = feel.humanize.clamp(0.0, 1.0);
    let swing = feel.swing.clamp(0.0, 1.0) * f32::from(MAX_OFFSET);
    for note in notes.notes_mut() {
        let step = usize::from(note.step);
        let played = performance
            .zip(class_of(note.pitch))
            .and_then(|(performance, class)| {
                Some((
                    performance.velocity.get(step)?[class],
                    performance.offset.get(step)?[class],
                ))
            });
        let mut offset = if step % 2 == 1 { swing } else { 0.0 };
        if let Some((velocity, played_offset)) = played {
            let grid = f32::from(note.velocity);
            note.velocity = (grid + humanize * (velocity - grid))
                .round()
                .clamp(1.0, 127.0) as u8;
            offset += humanize * played_offset * f32::from(OFFSET_UNITS_PER_STEP);
        }
        note.offset = offset
            .round()
            .clamp(-f32::from(MAX_OFFSET), f32::from(MAX_OFFSET)) as i8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::Note;

    fn phrase(steps: &[u16]) -> PartPhrase {
        let mut phrase = PartPhrase::default();
        for &step in steps {
            phrase.push(Note {
                step,
                length_steps: 1,
                pitch: 36,
                velocity: 100,
                offset: 0,
            });
        }
        phrase
    }

    fn performance(velocity: f32, offset: f32) -> Performance {
        Performance {
            velocity: vec![[velocity; DRUM_CLASSES]; 32],
            offset: vec![[offset; DRUM_CLASSES]; 32],
        }
    }

    #[test]
    fn humanize_zero_leaves_every_note_as_decoded() {
        let mut notes = phrase(&[0, 1, 4]);
        let before: Vec<Note> = notes.notes().to_vec();
        apply_feel(
            &mut notes,
            Some(&performance(40.0, -0.3)),
            Feel::default(),
            |_| Some(0),
        );
        assert_eq!(notes.notes(), &before[..]);
    }

    #[test]
    fn humanize_moves_velocity_and_timing_in_proportion() {
        let mut notes = phrase(&[0]);
        let feel = Feel {
            humanize: 0.5,
            swing: 0.0,
        };
        apply_feel(&mut notes, Some(&performance(40.0, -0.25)), feel, |_| {
            Some(0)
        });
        let note = notes.notes()[0];
        assert_eq!(note.velocity, 70, "halfway from 100 to 40");
        assert_eq!(note.offset, -6, "half of a quarter 16th early, in 48ths");
    }

    #[test]
    fn no_note_moves_more_than_a_third_of_a_16th() {
        let mut notes = phrase(&[0, 1, 2, 3]);
        let feel = Feel {
            humanize: 1.0,
            swing: 1.0,
        };
        apply_feel(&mut notes, Some(&performance(90.0, 0.5)), feel, |_| Some(0));
        assert!(notes.notes().iter().all(|n| n.offset.abs() <= MAX_OFFSET));
        assert_eq!(notes.notes()[1].offset, MAX_OFFSET);
    }

    #[test]
    fn swing_delays_every_second_16th_even_without_a_model() {
        let mut notes = phrase(&[0, 1, 2, 3]);
        let feel = Feel {
            humanize: 1.0,
            swing: 0.5,
        };
        apply_feel(&mut notes, None, feel, |_| Some(0));
        let offsets: Vec<i8> = notes.notes().iter().map(|n| n.offset).collect();
        assert_eq!(offsets, [0, 8, 0, 8]);
        assert!(notes.notes().iter().all(|n| n.velocity == 100));
    }
}
