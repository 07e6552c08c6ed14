//! Drawing a part's phrase: a drum grid (one row per drum sound) or a piano
//! roll (one row per pitch), as many sixteenth steps wide as the phrase
//! (32 to 256), with the playhead.

use egui::{Align2, Color32, FontId, Pos2, Rect, Sense, Stroke, StrokeKind, Ui, Vec2};

use crate::pattern::{Part, PartPhrase, STEPS_PER_BAR};

/// Width of the row labels, in points.
const LABEL_WIDTH: f32 = 34.0;
/// Fewest semitones a piano roll shows, so a one-note line is not a slab.
const MIN_PIANO_RANGE: u8 = 12;

/// The drum sounds the models play (General MIDI), top row first.
const DRUM_ROWS: [(u8, &str); 9] = [
    (49, "Crash"),
    (51, "Ride"),
    (46, "O.Hat"),
    (42, "C.Hat"),
    (50, "Tom H"),
    (48, "Tom M"),
    (45, "Tom L"),
    (38, "Snare"),
    (36, "Kick"),
];

/// How a view looks: the phrase playing now is bright, the waiting one dim.
#[derive(Clone, Copy)]
pub struct ViewStyle {
    /// Height of the whole view, in points.
    pub height: f32,
    /// Colour of the notes.
    pub note: Color32,
}

/// Draws `phrase` of `part`, `steps` long, across the available width.
/// `playhead` is the step heard last, if the transport runs.
pub fn show(
    ui: &mut Ui,
    part: Part,
    phrase: &PartPhrase,
    steps: usize,
    playhead: Option<usize>,
    style: ViewStyle,
) {
    let steps = steps.max(STEPS_PER_BAR);
    let width = ui.available_width().max(LABEL_WIDTH + steps as f32 * 1.5);
    let (rect, _) = ui.allocate_exact_size(Vec2::new(width, style.height), Sense::hover());
    let painter = ui.painter_at(rect);
    let visuals = ui.visuals();
    painter.rect_filled(rect, 2.0, visuals.extreme_bg_color);

    let rows: Vec<(u8, String)> = match part {
        Part::Drums => drum_rows(phrase),
        Part::Bass | Part::Melody => piano_rows(phrase),
    };
    let grid = Rect::from_min_max(Pos2::new(rect.left() + LABEL_WIDTH, rect.top()), rect.max);
    let step_width = grid.width() / steps as f32;
    let row_height = grid.height() / rows.len().max(1) as f32;
    let row_of = |pitch: u8| rows.iter().position(|(p, _)| *p == pitch);

    // Beats and bar lines, so a musician can count (bar lines alone once
    // beats would crowd).
    let line_every = if step_width < 4.0 { STEPS_PER_BAR } else { 4 };
    for step in (0..=steps).step_by(line_every) {
        let x = grid.left() + step as f32 * step_width;
        let strong = step % STEPS_PER_BAR == 0;
        let color = if strong {
            visuals.widgets.noninteractive.fg_stroke.color
        } else {
            visuals.widgets.noninteractive.bg_stroke.color
        };
        painter.line_segment(
            [Pos2::new(x, grid.top()), Pos2::new(x, grid.bottom())],
            Stroke::new(if strong { 1.0 } else { 0.5 }, color),
        );
    }
    let font = FontId::proportional((row_height * 0.8).clamp(7.0, 11.0));
    let label_every = ((9.0 / row_height).ceil() as usize).max(1);
    for (index, (_, label)) in rows.iter().enumerate() {
        if index % label_every == 0 {
            let y = grid.top() + (index as f32 + 0.5) * row_height;
            painter.text(
                Pos2::new(rect.left() + 2.0, y),
                Align2::LEFT_CENTER,
                label,
                font.clone(),
                visuals.text_color(),
            );
        }
    }
    for note in phrase.notes() {
        let Some(row) = row_of(note.pitch) else {
            continue;
        };
        // Drawn where it sounds: humanize and swing move it off its 16th.
        let start = note.start() as f32;
        let left = grid.left() + start * step_width;
        let end = (start + f32::from(note.length_steps)).min(steps as f32);
        let cell = Rect::from_min_max(
            Pos2::new(left + 0.5, grid.top() + row as f32 * row_height + 0.5),
            Pos2::new(
                grid.left() + end * step_width - 0.5,
                grid.top() + (row as f32 + 1.0) * row_height - 0.5,
            ),
        );
        let strength = f32::from(note.velocity) / 127.0;
        painter.rect_filled(cell, 1.0, style.note.gamma_multiply(0.4 + 0.6 * strength));
    }
    if let Some(step) = playhead {
        let column = Rect::from_min_size(
            Pos2::new(grid.left() + step as f32 * step_width, grid.top()),
            Vec2::new(step_width, grid.height()),
        );
        painter.rect_filled(column, 0.0, Color32::from_white_alpha(40));
        painter.rect_stroke(
            column,
            0.0,
            Stroke::new(1.0, Color32::from_rgb(255, 200, 80)),
            StrokeKind::Inside,
        );
    }
}

/// The standard kit, plus any other pitch the phrase plays.
fn drum_rows(phrase: &PartPhrase) -> Vec<(u8, String)> {
    let mut rows: Vec<(u8, String)> = DRUM_ROWS
        .iter()
        .map(|&(pitch, name)| (pitch, name.to_string()))
        .collect();
    for note in phrase.notes() {
        if !rows.iter().any(|(pitch, _)| *pitch == note.pitch) {
            rows.push((note.pitch, note.pitch.to_string()));
        }
    }
    rows
}

/// Highest pitch first, spanning the phrase's notes and at least an octave.
fn piano_rows(phrase: &PartPhrase) -> Vec<(u8, String)> {
    let pitches = phrase.notes().iter().map(|note| note.pitch);
    let (low, high) = match (pitches.clone().min(), pitches.max()) {
        (Some(low), Some(high)) => (low, high),
        _ => (60, 60),
    };
    let missing = MIN_PIANO_RANGE.saturating_sub(high - low);
    let low = low.saturating_sub(missing / 2);
    let high = (high + missing - missing / 2).min(127);
    (low..=high)
        .rev()
        .map(|pitch| (pitch, note_name(pitch)))
        .collect()
}

/// "C4" for 60; only C rows are labelled by name in a dense roll.
fn note_name(pitch: u8) -> String {
    const NAMES: [&str; 12] = [
        "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
    ];
    format!(
        "{}{}",
        NAMES[usize::from(pitch % 12)],
        i32::from(pitch / 12) - 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::Note;

    #[test]
    fn middle_c_is_c4() {
        assert_eq!(note_name(60), "C4");
        assert_eq!(note_name(61), "C#4");
        assert_eq!(note_name(21), "A0");
    }

    #[test]
    fn a_piano_roll_spans_the_notes_and_at_least_an_octave() {
        let mut phrase = PartPhrase::default();
        phrase.push(Note {
            step: 0,
            length_steps: 4,
            pitch: 40,
            velocity: 100,
            offset: 0,
        });
        let rows = piano_rows(&phrase);
        assert!(rows.len() > usize::from(MIN_PIANO_RANGE));
        assert!(rows.iter().any(|(pitch, _)| *pitch == 40));
        assert!(
            rows.first().unwrap().0 > rows.last().unwrap().0,
            "high on top"
        );
    }
}
