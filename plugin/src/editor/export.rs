//! "MIDI out": writes what the plugin plays next to a .mid file, on the GUI
//! thread (a few kilobytes; nothing waits on it).

use std::path::PathBuf;

use crate::bridge::NowPlaying;
use crate::engine::harmony;
use crate::midi_file;
use crate::params::LatentTrioParams;
use crate::pattern::{Part, Phrase};
use crate::render::{CHORDS_CHANNEL, RenderSettings, phrase_tracks};
use crate::sequencer::clock::Meter;

/// Bar counts offered for export.
const BAR_CHOICES: [u32; 6] = [2, 4, 8, 12, 16, 32];

/// What to export and where.
pub struct ExportChoice {
    /// Folder the files go to.
    folder: String,
    /// Bars to write.
    bars: u32,
    /// One part, or all (`None`).
    part: Option<Part>,
}

impl Default for ExportChoice {
    fn default() -> Self {
        let home = std::env::var_os("HOME")
            .or_else(|| std::env::var_os("USERPROFILE"))
            .map(PathBuf::from)
            .unwrap_or_default();
        ExportChoice {
            folder: home.join("Latent Trio").display().to_string(),
            bars: 4,
            part: None,
        }
    }
}

impl ExportChoice {
    /// The folder, bar count and part pickers.
    pub fn controls(&mut self, ui: &mut egui::Ui) {
        egui::ComboBox::from_id_salt("export-part")
            .selected_text(self.part.map_or("All parts", Part::title))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut self.part, None, "All parts");
                for part in Part::ALL {
                    ui.selectable_value(&mut self.part, Some(part), part.title());
                }
            });
        egui::ComboBox::from_id_salt("export-bars")
            .selected_text(format!("{} bars", self.bars))
            .show_ui(ui, |ui| {
                for bars in BAR_CHOICES {
                    ui.selectable_value(&mut self.bars, bars, format!("{bars} bars"));
                }
            });
        ui.label("to");
        ui.add(egui::TextEdit::singleline(&mut self.folder).desired_width(220.0));
    }

    /// Writes `phrase` as the plugin would play it at the host's tempo and
    /// meter, on the parts' channels. Returns what was written, in words.
    pub fn write(
        &self,
        phrase: &Phrase,
        params: &LatentTrioParams,
        now: &NowPlaying,
    ) -> Result<String, String> {
        let (numerator, denominator) = now.meter();
        let meter = Meter::from_host(
            i32::try_from(numerator).ok(),
            i32::try_from(denominator).ok(),
        );
        let parts: Vec<(Part, u8)> = Part::ALL
            .into_iter()
            .filter(|&part| self.part.is_none_or(|only| only == part))
            .map(|part| (part, params.part(part).midi_channel()))
            .collect();
        // What bass and melody follow, as a track of its own.
        let follows_chords = parts.iter().any(|&(part, _)| part != Part::Drums);
        let settings = RenderSettings {
            bars: self.bars,
            tempo: now.tempo(),
            meter,
            parts,
            variations: 1,
            chords_channel: follows_chords.then_some(CHORDS_CHANNEL),
        };
        let chords = harmony(
            &params.snapshot(0.0, now.played_chord()),
            &params.stored.get(),
        )
        .0;
        let folder = super::expand_home(self.folder.trim());
        std::fs::create_dir_all(&folder)
            .map_err(|error| format!("cannot create {}: {error}", folder.display()))?;
        let name = format!(
            "latent-trio-seed{}-{}-{}.mid",
            params.seed.value(),
            self.part.map_or("all", Part::name),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs())
        );
        let path = folder.join(name);
        midi_file::write(
            &path,
            settings.tempo,
            meter,
            &phrase_tracks(phrase, &chords, &settings),
        )
        .map_err(|error| error.to_string())?;
        Ok(format!("Wrote {}", path.display()))
    }
}
