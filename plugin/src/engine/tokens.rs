//! Decoded tokens -> notes of a phrase, by the model's vocabulary.

use super::manifest::{FIRST_NOTE_ON_TOKEN, Vocabulary};
#[cfg(test)]
use crate::pattern::MODEL_STEPS;
use crate::pattern::{MAX_PHRASE_STEPS, Note, PartPhrase};

/// Velocity of a drum hit by its place in the beat: downbeats speak loudest,
/// 16th off-beats softest, which is what a drummer's hands do when nothing
/// else says otherwise (v1 models do not decode velocity).
fn drum_velocity(step: usize) -> u8 {
    match step % 4 {
        0 => 110,
        2 => 96,
        _ => 82,
    }
}

/// Velocity of bass and melody notes.
const MELODIC_VELOCITY: u8 = 100;
/// Melodic tokens: a note-off, and "nothing changes".
pub(crate) const NOTE_OFF: i64 = 0;
pub(crate) const NO_EVENT: i64 = 1;

/// Fills `out` with the notes that `tokens` (one per 16th step) play.
///
/// Drums: every class bit set on a step is a one-step hit of that class's
/// pitch. Melodic: a note-on token starts a note that lasts until the next
/// note-on or note-off token, or the end of the phrase. `tokens` may be a
/// whole phrase of several pieces decoded apart (2-bar segments, or the bars
/// of a hierarchical model), each `piece_steps` long, up to
/// [`MAX_PHRASE_STEPS`].
///
/// A piece decoded apart never heard the note sounding into it: where it
/// holds on (no-event tokens) it means a rest, unless it ends the note with a
/// note-off before anything else, as a window of the training data does for
/// a note tied over its start. So a note runs on into the next piece only
/// then; otherwise it ends at the piece's first step.
pub fn tokens_to_notes(
    vocabulary: &Vocabulary,
    tokens: &[i64],
    piece_steps: usize,
    out: &mut PartPhrase,
) {
    out.clear();
    let steps = tokens.len().min(MAX_PHRASE_STEPS);
    match vocabulary {
        Vocabulary::DrumClasses { classes, .. } => {
            for (step, &token) in tokens[..steps].iter().enumerate() {
                for (bit, class) in classes.iter().enumerate() {
                    if token >> bit & 1 == 1 {
                        out.push(Note {
                            step: step as u16,
                            length_steps: 1,
                            pitch: class.pitch,
                            velocity: drum_velocity(step),
                            offset: 0,
                        });
                    }
                }
            }
        }
        Vocabulary::Melodic {
            min_pitch,
            max_pitch,
            ..
        } => {
            let piece_steps = piece_steps.max(1);
            // Whether the piece starting at `start` ties a sounding note over.
            let ties_over = |start: usize| {
                let piece = start..(start + piece_steps).min(steps);
                piece
                    .map(|s| tokens[s])
                    .find(|&token| token != NO_EVENT)
                    .is_some_and(|token| token == NOTE_OFF)
            };
            let mut step = 0;
            while step < steps {
                let token = tokens[step];
                if token < FIRST_NOTE_ON_TOKEN {
                    step += 1;
                    continue;
                }
                let pitch = i64::from(*min_pitch) + token - FIRST_NOTE_ON_TOKEN;
                let end = (step + 1..steps)
                    .find(|&s| tokens[s] != NO_EVENT || (s % piece_steps == 0 && !ties_over(s)))
                    .unwrap_or(steps);
                if pitch <= i64::from(*max_pitch) {
                    out.push(Note {
                        step: step as u16,
                        // A note held through all 16 bars loses its last 16th.
                        length_steps: (end - step).min(usize::from(u8::MAX)) as u8,
                        pitch: pitch as u8,
                        velocity: MELODIC_VELOCITY,
                        offset: 0,
                    });
                }
                step = end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::manifest::DrumClass;

    fn melodic() -> Vocabulary {
        Vocabulary::Melodic {
            size: 90,
            note_off: 0,
            no_event: 1,
            min_pitch: 21,
            max_pitch: 108,
        }
    }

    fn drums() -> Vocabulary {
        let pitches = [36, 38, 42, 46, 45, 48, 50, 49, 51];
        Vocabulary::DrumClasses {
            size: 512,
            classes: pitches
                .iter()
                .map(|&pitch| DrumClass {
                    name: pitch.to_string(),
                    pitch,
                    input_pitches: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_drum_token_plays_every_class_it_names() {
        let mut tokens = [0i64; MODEL_STEPS];
        tokens[0] = 0b101; // kick + closed hat
        tokens[6] = 0b10; // snare
        let mut out = PartPhrase::default();
        tokens_to_notes(&drums(), &tokens, MODEL_STEPS, &mut out);
        let played: Vec<(u16, u8)> = out.notes().iter().map(|n| (n.step, n.pitch)).collect();
        assert_eq!(played, vec![(0, 36), (0, 42), (6, 38)]);
        assert!(out.notes().iter().all(|n| n.length_steps == 1));
        assert!(
            out.notes()[0].velocity > out.notes()[2].velocity,
            "downbeats are accented"
        );
    }

    #[test]
    fn a_melodic_note_holds_until_the_next_event() {
        let mut tokens = [1i64; MODEL_STEPS];
        tokens[0] = 60 - 21 + 2; // C4 on
        tokens[4] = 0; // off
        tokens[8] = 64 - 21 + 2; // E4 on
        tokens[10] = 67 - 21 + 2; // G4 on ends E4
        let mut out = PartPhrase::default();
        tokens_to_notes(&melodic(), &tokens, MODEL_STEPS, &mut out);
        assert_eq!(played(&out), vec![(0, 4, 60), (8, 2, 64), (10, 22, 67)]);
    }

    fn played(out: &PartPhrase) -> Vec<(u16, u8, u8)> {
        out.notes()
            .iter()
            .map(|n| (n.step, n.length_steps, n.pitch))
            .collect()
    }

    #[test]
    fn a_note_runs_into_a_bar_decoded_apart_only_if_that_bar_ends_it() {
        // Bars decoded apart: C4 held at the end of bar 1.
        let mut tokens = [1i64; 3 * 16];
        tokens[12] = 60 - 21 + 2;
        // Bar 2 ends a note tied over it at its step 2, as the data does.
        tokens[18] = 0;
        // E4 late in bar 2; bar 3 only holds on, a rest to the bar decoding it.
        tokens[28] = 64 - 21 + 2;
        let mut out = PartPhrase::default();
        tokens_to_notes(&melodic(), &tokens, 16, &mut out);
        assert_eq!(played(&out), vec![(12, 6, 60), (28, 4, 64)]);
        // Decoded in one piece, the same tokens hold E4 to the end.
        tokens_to_notes(&melodic(), &tokens, 48, &mut out);
        assert_eq!(played(&out), vec![(12, 6, 60), (28, 20, 64)]);
    }

    #[test]
    fn rests_and_holds_alone_play_nothing() {
        let mut out = PartPhrase::default();
        tokens_to_notes(&melodic(), &[1i64; MODEL_STEPS], MODEL_STEPS, &mut out);
        assert!(out.is_empty());
        tokens_to_notes(&drums(), &[0i64; MODEL_STEPS], MODEL_STEPS, &mut out);
        assert!(out.is_empty());
    }
}
