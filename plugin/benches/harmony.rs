//! How closely bass and melody follow the progression: for 200 seeds and four
//! progressions (one minor, one with a chord outside the key), the share of
//! note-ons that are tones of the chord sounding, the share in the key, and
//! the share of beats where bass and melody clash (a minor second or a
//! tritone apart), with the scale lock off (the models alone) and on.
//!
//! Run: `cargo bench -p latent_trio --bench harmony` (the committed models;
//! `LATENT_TRIO_MODELS=<folder>` measures others). The same figures for the
//! held-out POP909 data: `python -m latent_trio_models.evaluate --part melody
//! --harmony` (models/README.md).

use std::path::{Path, PathBuf};

use latent_trio::engine::Engine;
use latent_trio::engine::runtime::{MODELS_ENV, ProviderChoice};
use latent_trio::harmony::{Chord, HarmonySettings, PRESETS, Progression};
use latent_trio::knobs::KnobSnapshot;
use latent_trio::pattern::{Part, PartPhrase, Phrase};
use latent_trio::stored::StoredLatents;

const SEEDS: u32 = 200;

/// (key root, preset index, what the table calls it).
const PROGRESSIONS: [(u8, usize, &str); 5] = [
    (0, 0, "C: I V vi IV"),
    (9, 5, "A minor: i VI III VII"),
    (5, 4, "F: ii7 V7 Imaj7"),
    (2, 7, "D: I bVII IV I"),
    (7, 9, "G: 12-bar blues"),
];

/// Counts over many phrases.
#[derive(Default)]
struct Tally {
    chord_tones: [usize; 2],
    in_key: [usize; 2],
    note_ons: [usize; 2],
    clashes: usize,
    shared_beats: usize,
}

impl Tally {
    fn add(&mut self, phrase: &Phrase, progression: &Progression, scale: Chord) {
        for (index, part) in [Part::Bass, Part::Melody].into_iter().enumerate() {
            for note in phrase.part(part).notes() {
                self.note_ons[index] += 1;
                self.chord_tones[index] += usize::from(
                    progression
                        .chord_at(usize::from(note.step))
                        .contains(note.pitch),
                );
                self.in_key[index] += usize::from(scale.contains(note.pitch));
            }
        }
        let (bass, melody) = (
            sounding(phrase.part(Part::Bass), phrase.steps()),
            sounding(phrase.part(Part::Melody), phrase.steps()),
        );
        for beat in (0..phrase.steps()).step_by(4) {
            if let (Some(low), Some(high)) = (bass[beat], melody[beat]) {
                self.shared_beats += 1;
                let interval = (i16::from(high) - i16::from(low)).rem_euclid(12);
                self.clashes += usize::from(matches!(interval, 1 | 6 | 11));
            }
        }
    }

    fn share(count: usize, of: usize) -> f64 {
        count as f64 / of.max(1) as f64
    }

    fn row(&self, name: &str, lock: &str) -> String {
        format!(
            "| {name} | {lock} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            Self::share(self.chord_tones[0], self.note_ons[0]),
            Self::share(self.chord_tones[1], self.note_ons[1]),
            Self::share(self.in_key[0], self.note_ons[0]),
            Self::share(self.in_key[1], self.note_ons[1]),
            Self::share(self.clashes, self.shared_beats),
        )
    }
}

/// The pitch sounding at each of the `steps` steps of a monophonic part.
fn sounding(part: &PartPhrase, steps: usize) -> Vec<Option<u8>> {
    let mut sounding = vec![None; steps];
    for note in part.notes() {
        let end = note.end_step().min(steps);
        sounding[usize::from(note.step)..end].fill(Some(note.pitch));
    }
    sounding
}

fn main() {
    let models = std::env::var_os(MODELS_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"));
    println!("models: {}", models.display());
    let mut engine =
        Engine::load(&models, ProviderChoice::Cpu).expect("ONNX Runtime and models load");
    let stored = StoredLatents::default();
    let mut phrase = Box::<Phrase>::default();
    println!(
        "| progression ({SEEDS} seeds) | scale lock | bass chord tones | melody chord tones | bass in key | melody in key | bass-melody clashes on beats |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (key_root, preset, name) in PROGRESSIONS {
        assert!(preset < PRESETS.len());
        for scale_lock in [false, true] {
            let harmony = HarmonySettings {
                key_root,
                preset,
                scale_lock,
                played: None,
                typed: false,
            };
            let progression = harmony.progression();
            let mut tally = Tally::default();
            for seed in 0..SEEDS {
                let knobs = KnobSnapshot {
                    seed,
                    harmony,
                    ..KnobSnapshot::default()
                };
                engine
                    .decode(&knobs, &stored, &mut phrase, None)
                    .result()
                    .expect("decodes");
                tally.add(&phrase, &progression, harmony.key().scale());
            }
            println!("{}", tally.row(name, if scale_lock { "on" } else { "off" }));
        }
    }
}
