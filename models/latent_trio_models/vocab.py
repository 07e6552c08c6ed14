"""Token vocabularies shared by data conversion, training, export and tests.

Drums: MusicVAE's 9-class reduced kit; one token per 16th step is the bit set of
classes hit on that step (2**9 = 512 tokens). Melody and bass: one token per
16th step, 0 = note-off, 1 = no event (hold or rest), 2.. = note-on of MIDI
pitch 21..108 (90 tokens).
"""

from __future__ import annotations

import numpy as np

STEPS_PER_BAR = 16

# (class name, GM pitch the plugin plays, every input pitch folded into it).
# Input pitches are the Roland TD-11 note numbers used by the Groove MIDI
# Dataset (a superset of General MIDI), plus the GM percussion pitches that
# belong to the same instrument family.
DRUM_CLASSES: list[tuple[str, int, tuple[int, ...]]] = [
    ("kick", 36, (35, 36)),
    ("snare", 38, (37, 38, 39, 40)),  # 37 side stick, 40 rim shot, 39 clap
    ("closed_hat", 42, (22, 42, 44)),  # 22 hat edge closed, 44 pedal hat
    ("open_hat", 46, (26, 46)),  # 26 hat edge open
    ("low_tom", 45, (41, 43, 45, 58)),  # 43 floor tom (TD-11), 58 its rim
    ("mid_tom", 48, (47, 48)),
    ("high_tom", 50, (50,)),
    ("crash", 49, (49, 52, 55, 57)),  # 55 crash edge, 52 china, 57 crash 2
    ("ride", 51, (51, 53, 59)),  # 53 bell, 59 edge
]
DRUM_VOCAB = 1 << len(DRUM_CLASSES)
PITCH_TO_DRUM_CLASS: dict[int, int] = {
    pitch: index for index, (_, _, pitches) in enumerate(DRUM_CLASSES) for pitch in pitches
}


def drum_class(name: str) -> int:
    """The index (and token bit) of the kit class called `name`."""
    return next(index for index, (class_name, _, _) in enumerate(DRUM_CLASSES) if class_name == name)


NOTE_OFF = 0
NO_EVENT = 1
MIN_PITCH = 21
MAX_PITCH = 108
MELODIC_VOCAB = 2 + MAX_PITCH - MIN_PITCH + 1  # 90

# Register the derived bass line is folded into (E1..G3).
BASS_MIN_PITCH = 28
BASS_MAX_PITCH = 55


def pitch_to_token(pitch: int) -> int:
    """Melodic token that starts `pitch`."""
    if not MIN_PITCH <= pitch <= MAX_PITCH:
        raise ValueError(f"pitch {pitch} outside {MIN_PITCH}..{MAX_PITCH}")
    return pitch - MIN_PITCH + 2


def token_to_pitch(token: int) -> int | None:
    """MIDI pitch a melodic token starts, or None for note-off / no-event."""
    return token - 2 + MIN_PITCH if token >= 2 else None


def drum_token(classes: set[int] | list[int]) -> int:
    """Token for the set of drum classes hit on one step."""
    token = 0
    for index in classes:
        token |= 1 << index
    return token


def drum_classes_of(token: int) -> list[int]:
    """Drum classes a token hits, in class order."""
    return [index for index in range(len(DRUM_CLASSES)) if token >> index & 1]


def drum_hits(tokens: np.ndarray) -> np.ndarray:
    """[..., class] True where each drum token hits the class."""
    return (tokens[..., None] >> np.arange(len(DRUM_CLASSES))) & 1 == 1


def drum_tokens(hits: np.ndarray) -> np.ndarray:
    """The drum tokens of [..., class] hits (`drum_hits` undone)."""
    return (hits.astype(np.int64) << np.arange(hits.shape[-1])).sum(-1)


def vocab_size(part: str) -> int:
    return DRUM_VOCAB if part == "drums" else MELODIC_VOCAB
