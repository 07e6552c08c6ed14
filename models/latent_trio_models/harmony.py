"""Chords and keys as the models see them, from POP909's annotations.

A chord is a 12-bit pitch-class mask (bit 0 = C) of the notes it contains, its
bass note included; 0 means no chord ("N"). A key is its tonic's pitch class,
plus 12 for minor; -1 means unknown. Both are stored per 16th step, and
transposing music by k semitones rotates them by k.
"""

from __future__ import annotations

import numpy as np

NO_CHORD = 0
NO_KEY = -1
# Model inputs per step: 12 pitch classes and a no-chord flag (`chroma`).
CHROMA_SIZE = 13

PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

# Intervals above the root of every quality POP909 uses.
QUALITIES = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "aug": (0, 4, 8),
    "sus2": (0, 2, 7),
    "sus4": (0, 5, 7),
    "sus4(b7)": (0, 5, 7, 10),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
    "minmaj7": (0, 3, 7, 11),
    "hdim7": (0, 3, 6, 10),
    "dim7": (0, 3, 6, 9),
    "maj6": (0, 4, 7, 9),
    "min6": (0, 3, 7, 9),
}

# Scale degrees a slash bass may name ("maj/3", "min7/b7").
DEGREES = {"1": 0, "b2": 1, "2": 2, "b3": 3, "3": 4, "4": 5, "#4": 6, "b5": 6, "5": 7, "#5": 8, "b6": 8, "6": 9, "b7": 10, "7": 11}


def pitch_class(name: str) -> int:
    """'C' -> 0, 'Db' -> 1, 'F#' -> 6."""
    value = PITCH_CLASSES[name[0]]
    for accidental in name[1:]:
        value += {"b": -1, "#": 1}[accidental]
    return value % 12


def chord_mask(label: str) -> int:
    """The pitch-class mask of a POP909 chord label ('B:maj', 'A:min7/b7',
    'N'); raises ValueError for a quality it does not know."""
    if label == "N":
        return NO_CHORD
    root_name, _, rest = label.partition(":")
    quality, _, bass = rest.partition("/")
    if quality not in QUALITIES:
        raise ValueError(f"unknown chord quality {quality!r} in {label!r}")
    root = pitch_class(root_name)
    intervals = list(QUALITIES[quality])
    if bass:
        intervals.append(DEGREES[bass])
    mask = 0
    for interval in intervals:
        mask |= 1 << ((root + interval) % 12)
    return mask


def key_index(label: str) -> int:
    """'Gb:maj' -> 6, 'A:min' -> 21."""
    tonic, _, mode = label.partition(":")
    return pitch_class(tonic) + (12 if mode.startswith("min") else 0)


def transpose_chords(masks: np.ndarray, semitones: int) -> np.ndarray:
    """Rotates every 12-bit mask up by `semitones` (NO_CHORD stays 0)."""
    k = semitones % 12
    masks = masks.astype(np.int32)
    return (((masks << k) | (masks >> (12 - k))) & 0xFFF).astype(np.uint16)


def transpose_keys(keys: np.ndarray, semitones: int) -> np.ndarray:
    """Moves every key's tonic up by `semitones` (unknown stays -1)."""
    keys = keys.astype(np.int16)
    moved = (keys % 12 + semitones) % 12 + (keys // 12) * 12
    return np.where(keys < 0, NO_KEY, moved).astype(np.int8)


def chroma(masks: np.ndarray) -> np.ndarray:
    """[..., 13] float inputs: the 12 pitch classes, then a no-chord flag."""
    bits = (masks[..., None].astype(np.int32) >> np.arange(12)) & 1
    return np.concatenate([bits, (masks == NO_CHORD)[..., None]], axis=-1).astype(np.float32)


def slot_harmony(masks: np.ndarray) -> np.ndarray:
    """[..., steps] chord masks -> [..., 13]: the share of a slot's steps in
    which each pitch class sounds in the chord, then the share with no chord
    (what the song prior hears of a 2-bar slot's harmony)."""
    return chroma(masks).mean(axis=-2)


# Scale steps above the tonic: major, and natural minor.
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)


def in_scale(pitch_classes: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each pitch class is in the scale of its key (False where the
    key is unknown)."""
    major = np.zeros(12, dtype=bool)
    major[list(MAJOR_SCALE)] = True
    minor = np.zeros(12, dtype=bool)
    minor[list(MINOR_SCALE)] = True
    keys = keys.astype(np.int16)
    degree = (pitch_classes - keys % 12) % 12
    return np.where(keys < 0, False, np.where(keys >= 12, minor[degree], major[degree]))


def spans_at(times: np.ndarray, starts: np.ndarray, ends: np.ndarray, values: np.ndarray, outside: int) -> np.ndarray:
    """The value of the span holding each time (`outside` between and beyond
    spans)."""
    index = np.searchsorted(starts, times, side="right") - 1
    inside = (index >= 0) & (times < ends[np.clip(index, 0, None)])
    return np.where(inside, values[np.clip(index, 0, None)], outside)
