"""Musical attributes of token windows (of any number of bars), as used for
the latent attribute vectors (MusicVAE section 5.3) and for checking that
those vectors work."""

from __future__ import annotations

import numpy as np

from . import vocab



def _bars(tokens: np.ndarray) -> float:
    return tokens.shape[-1] / vocab.STEPS_PER_BAR


def _onsets(tokens: np.ndarray, part: str) -> np.ndarray:
    return tokens > 0 if part == "drums" else tokens >= 2


def density(tokens: np.ndarray, part: str) -> np.ndarray:
    """Onsets per bar (drums: steps with any hit)."""
    return _onsets(tokens, part).sum(-1) / _bars(tokens)


def syncopation(tokens: np.ndarray, part: str) -> np.ndarray:
    """Share of onsets on odd 16th steps (off the 8th-note grid)."""
    onsets = _onsets(tokens, part)
    odd = onsets[:, 1::2].sum(-1)
    return odd / np.maximum(onsets.sum(-1), 1)


def register(tokens: np.ndarray, part: str) -> np.ndarray:
    """Mean MIDI pitch of the onsets (0 for a window without notes)."""
    pitches = np.where(tokens >= 2, tokens - 2 + vocab.MIN_PITCH, 0)
    count = (tokens >= 2).sum(-1)
    return pitches.sum(-1) / np.maximum(count, 1)


def interval(tokens: np.ndarray, part: str) -> np.ndarray:
    """Mean absolute interval in semitones between consecutive onsets."""
    out = np.zeros(len(tokens))
    for row, window in enumerate(tokens):
        pitches = window[window >= 2].astype(np.int64)
        if len(pitches) > 1:
            out[row] = np.abs(np.diff(pitches)).mean()
    return out


def _drum_activity(*class_names: str):
    classes = [vocab.drum_class(name) for name in class_names]

    def activity(tokens: np.ndarray, part: str) -> np.ndarray:
        return vocab.drum_hits(tokens)[..., classes].sum((-2, -1)) / _bars(tokens)

    return activity


ATTRIBUTES = {
    "density": ("onsets per bar", density),
    "syncopation": ("share of onsets on odd 16th steps", syncopation),
    "register": ("mean pitch of the onsets (MIDI)", register),
    "interval": ("mean absolute interval between onsets (semitones)", interval),
    "kick": ("kick hits per bar", _drum_activity("kick")),
    "snare": ("snare hits per bar", _drum_activity("snare")),
    "hats": ("closed and open hi-hat hits per bar", _drum_activity("closed_hat", "open_hat")),
}


def attribute_names(part: str) -> list[str]:
    if part == "drums":
        return ["density", "syncopation", "kick", "snare", "hats"]
    return ["density", "syncopation", "register", "interval"]


def measure(name: str, tokens: np.ndarray, part: str) -> np.ndarray:
    return ATTRIBUTES[name][1](np.asarray(tokens), part)
