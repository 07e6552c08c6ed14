//! What the musician stored beyond the parameters: the latents of imported
//! clips and of the A/B scenes, and a typed chord progression. They are saved
//! with the project (a persisted field of the parameters) and read by the
//! worker at every decode.
//!
//! Threads: the GUI and the worker write, the worker reads; the audio thread
//! only reads [`SharedStoredLatents::revision`], an atomic, to know when to
//! ask for a new phrase.

use std::sync::atomic::{AtomicU32, Ordering};

use nice_plug::params::persist::PersistentField;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::harmony::TypedProgression;
use crate::pattern::{Part, SONG_SLOTS};

/// Scene slots: A and B.
pub const SCENES: usize = 2;

/// What the musician calls each scene slot.
pub const SCENE_NAMES: [&str; SCENES] = ["A", "B"];

/// The name of scene slot `scene` ("?" for one that does not exist).
pub fn scene_name(scene: usize) -> &'static str {
    SCENE_NAMES.get(scene).copied().unwrap_or("?")
}

/// A part's latent found by encoding a musician's .mid clip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipLatent {
    /// File name of the clip, for the GUI.
    pub name: String,
    /// Which bars of the clip were used and how many notes.
    pub summary: String,
    /// The 2-bar encoder's mean for the clip.
    pub latent: Vec<f32>,
    /// The 16-bar encoder's mean for the clip repeated over 16 bars (empty
    /// where that model was not loaded, and in projects saved before it).
    #[serde(default)]
    pub long_latent: Vec<f32>,
}

impl ClipLatent {
    /// The latent of the 2-bar model, or of the 16-bar one when `long`.
    pub fn latent_for(&self, long: bool) -> &[f32] {
        if long {
            &self.long_latent
        } else {
            &self.latent
        }
    }
}

/// One scene: the latent every part played when it was stored. A part whose
/// model was not loaded then has an empty latent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// Per part, by [`Part::index`].
    pub latents: [Vec<f32>; 3],
    /// Per part: whether its latent is the 16-bar model's (projects saved
    /// before there were 16-bar models hold 2-bar latents only).
    #[serde(default)]
    pub long: [bool; 3],
}

/// A song of Song mode: the latent of every 2-bar slot of every part. Only
/// a song whose slots were re-rolled is stored (its seed alone writes the
/// others again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Song {
    /// The seed it was written from.
    pub seed: u32,
    /// How often its slots were re-rolled (0: the seed's own song).
    pub take: u32,
    /// Per part, by [`Part::index`]: one latent per slot (`None` for a part
    /// no song prior writes; it plays its phrase latent in every slot).
    pub latents: [Option<Vec<Vec<f32>>>; 3],
}

/// A clip whose structure the melody follows (context transfer with the
/// Transformer VAE): the melody keeps its own material and repeats it where
/// the clip repeats itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowedStructure {
    /// File name of the clip, for the GUI.
    pub name: String,
    /// Which bars of the clip repeat earlier ones, in one sentence.
    pub summary: String,
    /// The Transformer VAE latent the melody plays from (see
    /// `engine::structure::follow`).
    pub latent: Vec<f32>,
    /// Per bar: the bar whose embedding it plays (itself, or the earlier bar
    /// it repeats).
    #[serde(default)]
    pub bar_sources: Vec<u8>,
}

/// Everything stored, as saved in the project.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredLatents {
    /// Per part: the imported clip that replaces the seed's latent as the
    /// base the knobs move from.
    pub clips: [Option<ClipLatent>; 3],
    /// Scene A and B.
    pub scenes: [Option<Scene>; SCENES],
    /// The progression typed in the window (followed with Follow: Typed chords).
    #[serde(default)]
    pub typed_progression: Option<TypedProgression>,
    /// The song of Song mode, once slots were re-rolled.
    #[serde(default)]
    pub song: Option<Song>,
    /// Slots of the song a re-roll keeps.
    #[serde(default)]
    pub locked_slots: [bool; SONG_SLOTS],
    /// The clip whose structure the melody follows in 4- to 16-bar phrases.
    #[serde(default)]
    pub structure: Option<FollowedStructure>,
}

impl StoredLatents {
    /// The song `seed` plays, if one was stored for it (and it has every
    /// slot: a damaged one is ignored, and the seed writes its own).
    pub fn song_of(&self, seed: u32) -> Option<&Song> {
        self.song.as_ref().filter(|song| {
            song.seed == seed
                && song
                    .latents
                    .iter()
                    .flatten()
                    .all(|slots| slots.len() == SONG_SLOTS)
        })
    }

    /// The imported clip of `part`, if any.
    pub fn clip(&self, part: Part) -> Option<&ClipLatent> {
        self.clips[part.index()].as_ref()
    }

    /// The latent between scene A and B at `morph` (0 = A, 1 = B) for `part`,
    /// if both scenes hold a latent of `latent_size` for it from the same
    /// model (the 16-bar one when `long`, else the 2-bar one).
    pub fn morph(
        &self,
        part: Part,
        morph: f32,
        latent_size: usize,
        long: bool,
    ) -> Option<Vec<f32>> {
        let [Some(a), Some(b)] = &self.scenes else {
            return None;
        };
        let index = part.index();
        let same_model = a.long[index] == long && b.long[index] == long;
        let (a, b) = (&a.latents[index], &b.latents[index]);
        (same_model && a.len() == latent_size && b.len() == latent_size).then(|| slerp(a, b, morph))
    }

    /// Every value of every stored latent (clips and scenes).
    pub fn all_latents(&self) -> impl Iterator<Item = f32> + '_ {
        let clips = self
            .clips
            .iter()
            .flatten()
            .flat_map(|clip| [clip.latent.as_slice(), clip.long_latent.as_slice()]);
        let scenes = self
            .scenes
            .iter()
            .flatten()
            .flat_map(|scene| scene.latents.iter().map(Vec::as_slice));
        let song = self
            .song
            .iter()
            .flat_map(|song| song.latents.iter().flatten().flatten().map(Vec::as_slice));
        let structure = self
            .structure
            .iter()
            .map(|structure| structure.latent.as_slice());
        clips
            .chain(scenes)
            .chain(song)
            .chain(structure)
            .flatten()
            .copied()
    }

    /// Whether both scenes are stored.
    pub fn has_both_scenes(&self) -> bool {
        self.scenes.iter().all(Option::is_some)
    }
}

/// Spherical interpolation, as MusicVAE interpolates latents: the path stays
/// at the norm typical of the prior instead of cutting through its low-norm
/// middle, where a straight line would decode to timid material.
pub fn slerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    let t = t.clamp(0.0, 1.0);
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let (na, nb) = (norm(a), norm(b));
    let cosine = if na > 0.0 && nb > 0.0 {
        (a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (na * nb)).clamp(-1.0, 1.0)
    } else {
        1.0
    };
    let omega = cosine.acos();
    let (wa, wb) = if omega.sin().abs() < 1e-4 {
        // (Nearly) parallel: a straight line is the same path.
        (1.0 - t, t)
    } else {
        (
            ((1.0 - t) * omega).sin() / omega.sin(),
            (t * omega).sin() / omega.sin(),
        )
    };
    a.iter().zip(b).map(|(x, y)| wa * x + wb * y).collect()
}

/// [`StoredLatents`] shared between threads, with a revision number that
/// changes on every write (including a project load), so the audio thread
/// notices with one atomic load.
#[derive(Default)]
pub struct SharedStoredLatents {
    latents: RwLock<StoredLatents>,
    revision: AtomicU32,
}

impl SharedStoredLatents {
    /// A copy of what is stored (worker and GUI; never the audio thread).
    pub fn get(&self) -> StoredLatents {
        self.latents.read().clone()
    }

    /// Changes what is stored (worker and GUI; never the audio thread).
    pub fn update(&self, change: impl FnOnce(&mut StoredLatents)) {
        change(&mut self.latents.write());
        self.revision.fetch_add(1, Ordering::AcqRel);
    }

    /// Changes with every write. Lock-free: the audio thread may read it.
    pub fn revision(&self) -> u32 {
        self.revision.load(Ordering::Acquire)
    }
}

impl<'a> PersistentField<'a, StoredLatents> for SharedStoredLatents {
    fn set(&self, new_value: StoredLatents) {
        self.update(|stored| *stored = new_value);
    }

    fn map<F, R>(&self, f: F) -> R
    where
        F: Fn(&StoredLatents) -> R,
    {
        f(&self.latents.read())
    }
}

// The parameters hold the field in an `Arc` so the worker can share it.
impl<'a> PersistentField<'a, StoredLatents> for std::sync::Arc<SharedStoredLatents> {
    fn set(&self, new_value: StoredLatents) {
        self.as_ref().set(new_value);
    }

    fn map<F, R>(&self, f: F) -> R
    where
        F: Fn(&StoredLatents) -> R,
    {
        self.as_ref().map(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &[f32]) -> f32 {
        v.iter().map(|x| x * x).sum::<f32>().sqrt()
    }

    #[test]
    fn a_morph_starts_on_scene_a_and_ends_on_scene_b() {
        let a = vec![1.0, 0.0, 0.0];
        let b = vec![0.0, 2.0, 0.0];
        assert_eq!(slerp(&a, &b, 0.0), a);
        let end = slerp(&a, &b, 1.0);
        assert!(end.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5));
    }

    #[test]
    fn half_way_keeps_the_norm_instead_of_cutting_the_corner() {
        let a = vec![3.0, 0.0];
        let b = vec![0.0, 3.0];
        let middle = slerp(&a, &b, 0.5);
        assert!((norm(&middle) - 3.0).abs() < 1e-4, "{middle:?}");
    }

    #[test]
    fn every_write_and_every_project_load_changes_the_revision() {
        let shared = SharedStoredLatents::default();
        let before = shared.revision();
        shared.update(|stored| stored.scenes[0] = None);
        let after_write = shared.revision();
        assert_ne!(before, after_write);
        PersistentField::set(&shared, StoredLatents::default());
        assert_ne!(after_write, shared.revision());
    }

    #[test]
    fn a_morph_needs_both_scenes_of_the_right_size() {
        let scene = |value: f32| Scene {
            latents: [vec![value; 4], vec![value; 4], Vec::new()],
            long: [false, true, false],
        };
        let mut stored = StoredLatents::default();
        stored.scenes[0] = Some(scene(1.0));
        assert!(stored.morph(Part::Drums, 0.5, 4, false).is_none());
        stored.scenes[1] = Some(scene(-1.0));
        assert!(stored.morph(Part::Drums, 0.5, 4, false).is_some());
        assert!(
            stored.morph(Part::Drums, 0.5, 8, false).is_none(),
            "other size"
        );
        assert!(
            stored.morph(Part::Drums, 0.5, 4, true).is_none(),
            "16-bar phrase, 2-bar scenes"
        );
        assert!(
            stored.morph(Part::Bass, 0.5, 4, true).is_some(),
            "16-bar scenes"
        );
        assert!(
            stored.morph(Part::Melody, 0.5, 4, false).is_none(),
            "not stored"
        );
    }
}
