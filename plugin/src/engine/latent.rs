//! The latent vector a part is decoded from, and the axes the knobs move it
//! along (`latent_axes.json` beside the manifest).
//!
//! `z = base + sum over principal knobs of (knob * std * direction) + sum
//! over attribute knobs of (knob * attribute vector)`, where the base is the
//! latent of an imported clip, or else the prior draw for the seed.
//!
//! Principal knobs are in standard deviations of the encoded training set, so
//! "+2" on any knob is an equally bold move; an attribute knob at +1 adds the
//! whole top-quartile-minus-bottom-quartile difference (MusicVAE section 5.3).

use std::path::Path;

use serde::Deserialize;

use super::ModelError;
use super::random::SeededRandom;
use crate::knobs::{ATTRIBUTE_KNOBS, AttributeKnob, PRINCIPAL_KNOBS, PartKnobs};
use crate::pattern::Part;

/// Stream id of the seed's latent draw (sampling uses another).
const LATENT_STREAM: u64 = 1;

#[derive(Deserialize)]
struct AxesFile {
    principal: Vec<PrincipalAxisFile>,
    attributes: Vec<AttributeAxisFile>,
}

#[derive(Deserialize)]
struct PrincipalAxisFile {
    name: String,
    direction: Vec<f32>,
    std: f32,
}

#[derive(Deserialize)]
struct AttributeAxisFile {
    name: String,
    #[serde(default)]
    description: String,
    vector: Vec<f32>,
    /// Older exports did not measure it.
    #[serde(default = "always")]
    monotonic_share: f32,
}

fn always() -> f32 {
    1.0
}

/// A knob whose attribute rises with it for fewer of the exporter's phrases
/// than this is left out: it would not do what its name says.
pub const MONOTONIC_NEEDED: f32 = 0.9;

/// A direction in latent space with the spread of the data along it.
#[derive(Debug, Clone)]
pub struct PrincipalAxis {
    /// e.g. `pc1`.
    pub name: String,
    /// Unit vector.
    pub direction: Vec<f32>,
    /// Standard deviation of the encoded training set along `direction`.
    pub std: f32,
}

/// An attribute vector: where "more of this" lies.
#[derive(Debug, Clone)]
pub struct AttributeAxis {
    /// e.g. `density`.
    pub name: String,
    /// What the attribute measures, for the GUI.
    pub description: String,
    /// Mean latent of the top quartile minus the bottom quartile, scaled so
    /// that -1..+1 spans the data's interquartile range of the attribute.
    pub vector: Vec<f32>,
    /// Share of phrases whose attribute rose steadily along the vector when
    /// the model was exported.
    pub monotonic_share: f32,
}

/// The axes of one model, checked against its latent size.
#[derive(Debug, Clone)]
pub struct LatentAxes {
    /// At least [`PRINCIPAL_KNOBS`] principal axes, strongest first.
    pub principal: Vec<PrincipalAxis>,
    /// The attribute vector behind each attribute knob, `None` where the part
    /// has no such knob or the model's vector does not move the attribute
    /// steadily (see [`MONOTONIC_NEEDED`]).
    pub knob_vectors: [Option<AttributeAxis>; ATTRIBUTE_KNOBS],
    /// Every attribute vector in the file.
    pub attributes: Vec<AttributeAxis>,
}

impl LatentAxes {
    /// Reads and checks the axes file of a `part` model with latent size `latent`.
    pub fn load(path: &Path, part: Part, latent: usize) -> Result<LatentAxes, ModelError> {
        let wrong = |detail: String| ModelError::LatentAxes {
            path: path.to_path_buf(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let file: AxesFile =
            serde_json::from_str(&text).map_err(|error| wrong(format!("not valid: {error}")))?;
        if file.principal.len() < PRINCIPAL_KNOBS {
            return Err(wrong(format!(
                "{} principal axes, the knobs need {PRINCIPAL_KNOBS}",
                file.principal.len()
            )));
        }
        let finite = |v: &[f32]| v.len() == latent && v.iter().all(|x| x.is_finite());
        for axis in &file.principal {
            if !finite(&axis.direction) || !axis.std.is_finite() || axis.std < 0.0 {
                return Err(wrong(format!(
                    "principal axis {} is not {latent} finite numbers with a non-negative std",
                    axis.name
                )));
            }
        }
        let attributes: Vec<AttributeAxis> = file
            .attributes
            .into_iter()
            .map(|a| {
                if finite(&a.vector) {
                    Ok(AttributeAxis {
                        name: a.name,
                        description: a.description,
                        vector: a.vector,
                        monotonic_share: a.monotonic_share,
                    })
                } else {
                    Err(wrong(format!(
                        "attribute {} is not {latent} finite numbers",
                        a.name
                    )))
                }
            })
            .collect::<Result<_, _>>()?;
        let mut knob_vectors: [Option<AttributeAxis>; ATTRIBUTE_KNOBS] = Default::default();
        for (slot, knob) in knob_vectors.iter_mut().zip(AttributeKnob::ALL) {
            if !knob.applies_to(part) {
                continue;
            }
            let axis = attributes
                .iter()
                .find(|a| a.name == knob.axis_name())
                .ok_or_else(|| wrong(format!("no \"{}\" attribute vector", knob.axis_name())))?;
            if axis.monotonic_share >= MONOTONIC_NEEDED {
                *slot = Some(axis.clone());
            }
        }
        Ok(LatentAxes {
            principal: file
                .principal
                .into_iter()
                .map(|p| PrincipalAxis {
                    name: p.name,
                    direction: p.direction,
                    std: p.std,
                })
                .collect(),
            knob_vectors,
            attributes,
        })
    }

    /// Writes the latent of `part` for `seed` and `knobs` into `z`, moving
    /// from `base` when given (an imported clip; same length as `z`) and from
    /// the seed's prior draw otherwise.
    pub fn compose(
        &self,
        seed: u32,
        part: Part,
        knobs: &PartKnobs,
        base: Option<&[f32]>,
        z: &mut [f32],
    ) {
        match base {
            Some(base) => z.copy_from_slice(base),
            None => {
                let mut random = SeededRandom::new(seed, part.index(), LATENT_STREAM);
                for value in z.iter_mut() {
                    *value = random.normal();
                }
            }
        }
        for (axis, &knob) in self.principal.iter().zip(&knobs.principal) {
            add_scaled(z, &axis.direction, knob * axis.std);
        }
        for (axis, &knob) in self.knob_vectors.iter().zip(&knobs.attributes) {
            if let Some(axis) = axis {
                add_scaled(z, &axis.vector, knob);
            }
        }
    }
}

fn add_scaled(z: &mut [f32], direction: &[f32], scale: f32) {
    if scale != 0.0 {
        for (value, d) in z.iter_mut().zip(direction) {
            *value += scale * d;
        }
    }
}
