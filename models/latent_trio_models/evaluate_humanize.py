"""How human the humanize models make a quantised pattern, on held-out
performances (GrooVAE's Humanize evaluation): the mean absolute error of
the velocity and of the timing of every hit or note-on against what the
player really did, beside baselines that use no model.

Baselines:
- `grid`: the plugin without humanize (drums at 110 / 96 / 82 by place in
  the beat, bass and melody at 100, every note on the grid);
- `jitter`: the grid's notes moved by random jitter with the data's spread
  (velocity and offset drawn from a normal with the training data's mean and
  standard deviation per drum class, or per part), seeded;
- `position_median`: the training data's median velocity and offset for
  each drum class at each 16th of the bar (no model, but knows the data).

Run: python -m latent_trio_models.evaluate_humanize --part drums
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import data as conversion
from . import vocab
from .data import load_windows
from .humanize import HumanizeSize, Humanizer, drum_hits

#: Velocities the plugin plays without humanize (engine/tokens.rs).
GRID_DRUM_VELOCITY = {0: 110, 2: 96}
GRID_DRUM_OFF_BEAT_VELOCITY = 82
GRID_MELODIC_VELOCITY = 100


@dataclass
class Performances:
    """Held-out or training windows: tokens, the velocity of every onset and
    (drums) its offset from the grid in 16ths, and each window's tempo."""

    tokens: np.ndarray  # [n, steps]
    velocities: np.ndarray  # drums [n, steps, 9]; melodic [n, steps]
    offsets: np.ndarray | None  # drums [n, steps, 9]
    bpm: np.ndarray | None  # drums [n]

    def onsets(self) -> np.ndarray:
        """Where a hit or note-on is."""
        if self.offsets is not None:
            return self.velocities > 0
        return self.tokens > vocab.NO_EVENT


def groove_tempi(groove: Path) -> dict[str, float]:
    """BPM of every Groove performance, by id."""
    with (groove / "info.csv").open() as file:
        return {row["id"]: float(row["bpm"]) for row in csv.DictReader(file)}


def performances(data: Path, part: str, split: str, groove: Path | None = None) -> Performances:
    windows = load_windows(data, part)
    tokens = windows[f"{split}_2bar"].astype(np.int64)
    velocities = windows[f"{split}_2bar_velocity"]
    if part != "drums":
        return Performances(tokens, velocities, None, None)
    bpm = None
    if groove is not None:
        tempi = groove_tempi(groove)
        bpm = np.array([tempi.get(song, 120.0) for song in windows[f"{split}_2bar_song"]])
    return Performances(tokens, velocities, windows[f"{split}_2bar_offset"].astype(np.float32), bpm)


def heldout_performances(part: str, data: Path) -> Performances:
    """Every distinct 2-bar test window of `part`, converted from the raw
    data (as `evaluate.heldout_windows` does for the VAEs), with its
    performance and, for drums, its tempo."""
    counts = conversion.Counts()
    if part == "drums":
        songs = conversion.load_groove_split(data, "test", counts)
    else:
        songs = [song[part] for song in conversion.load_pop909_split(data, "test", counts)]
    length = conversion.WINDOW_BARS * vocab.STEPS_PER_BAR
    found = ((song, start, length) for song in songs for start in conversion.windows(song, part, conversion.WINDOW_BARS, 1, counts))
    tokens, velocities, offsets, ids = [], [], [], []
    for song, start, _ in conversion.unique_windows(found, counts, "held-out"):
        tokens.append(song.tokens[start : start + length])
        velocities.append(song.velocities[start : start + length])
        if song.offsets is not None:
            offsets.append(song.offsets[start : start + length])
        ids.append(song.song_id)
    bpm = None
    if part == "drums":
        tempi = groove_tempi(data / "groove")
        bpm = np.array([tempi.get(song, 120.0) for song in ids])
    return Performances(
        np.array(tokens, dtype=np.int64),
        np.array(velocities, dtype=np.uint8),
        np.array(offsets, dtype=np.float32) if offsets else None,
        bpm,
    )


def grid_velocities(performances: Performances) -> np.ndarray:
    """What the plugin plays without humanize."""
    steps = performances.tokens.shape[1]
    if performances.offsets is None:
        return np.full(performances.velocities.shape, GRID_MELODIC_VELOCITY, dtype=np.float32)
    by_step = np.array(
        [GRID_DRUM_VELOCITY.get(step % 4, GRID_DRUM_OFF_BEAT_VELOCITY) for step in range(steps)], dtype=np.float32
    )
    return np.broadcast_to(by_step[None, :, None], performances.velocities.shape).copy()


def predict(model: Humanizer, performances: Performances, batch: int = 512) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's velocities (and offsets) for every window."""
    model.eval()
    velocities, offsets = [], []
    with torch.no_grad():
        for start in range(0, len(performances.tokens), batch):
            tokens = torch.as_tensor(performances.tokens[start : start + batch])
            pattern = drum_hits(tokens) if model.drums else tokens
            velocity, offset = model(pattern)
            velocities.append(velocity.numpy())
            if offset is not None:
                offsets.append(offset.numpy())
    return np.concatenate(velocities), (np.concatenate(offsets) if offsets else None)


def errors(performances: Performances, velocities: np.ndarray, offsets: np.ndarray | None) -> dict[str, float]:
    """Mean absolute velocity error (MIDI units) and, for drums, timing error
    in 16ths and in ms at each performance's tempo, over every onset."""
    onsets = performances.onsets()
    result = {"velocity_mae": float(np.abs(velocities - performances.velocities)[onsets].mean())}
    if performances.offsets is not None:
        assert offsets is not None
        error = np.abs(offsets - performances.offsets)
        result["timing_mae_16ths"] = float(error[onsets].mean())
        if performances.bpm is not None:
            ms_per_16th = 60_000.0 / performances.bpm / 4.0
            result["timing_mae_ms"] = float((error * ms_per_16th[:, None, None])[onsets].mean())
    return {key: round(value, 4) for key, value in result.items()}


def data_spread(train: Performances) -> dict[str, np.ndarray]:
    """Mean and standard deviation of velocity (and offset) in the training
    data, per drum class or for the part."""
    onsets = train.onsets()
    if train.offsets is None:
        values = train.velocities[onsets].astype(np.float32)
        return {"velocity": np.array([values.mean(), values.std()])}
    spread = {}
    for name, array in (("velocity", train.velocities.astype(np.float32)), ("offset", train.offsets)):
        spread[name] = np.array(
            [[array[..., c][onsets[..., c]].mean(), array[..., c][onsets[..., c]].std()] for c in range(array.shape[-1])]
        )
    return spread


def jitter(performances: Performances, spread: dict[str, np.ndarray], seed: int = 0):
    """The grid's notes with random velocity and timing of the data's spread."""
    rng = np.random.default_rng(seed)
    shape = performances.velocities.shape
    if performances.offsets is None:
        mean, std = spread["velocity"]
        return np.clip(rng.normal(mean, std, shape), 1, 127), None
    velocity = rng.normal(spread["velocity"][:, 0], spread["velocity"][:, 1], shape)
    offset = rng.normal(spread["offset"][:, 0], spread["offset"][:, 1], shape)
    return np.clip(velocity, 1, 127), np.clip(offset, -0.5, 0.5)


def position_medians(train: Performances, performances: Performances):
    """Per drum class and 16th of the bar (or per 16th, melodic): the
    training data's median velocity and offset."""
    steps = performances.tokens.shape[1]
    onsets = train.onsets()
    positions = np.arange(train.tokens.shape[1]) % vocab.STEPS_PER_BAR
    if train.offsets is None:
        table = np.array([np.median(train.velocities[:, positions == p][onsets[:, positions == p]]) for p in range(16)])
        return np.broadcast_to(table[np.arange(steps) % 16][None], performances.velocities.shape), None
    classes = train.velocities.shape[-1]
    velocity = np.zeros((16, classes), dtype=np.float32)
    offset = np.zeros((16, classes), dtype=np.float32)
    for p in range(16):
        for c in range(classes):
            hit = onsets[:, positions == p, c]
            if hit.any():
                velocity[p, c] = np.median(train.velocities[:, positions == p, c][hit])
                offset[p, c] = np.median(train.offsets[:, positions == p, c][hit])
    rows = np.arange(steps) % 16
    shape = performances.velocities.shape
    return np.broadcast_to(velocity[rows][None], shape), np.broadcast_to(offset[rows][None], shape)


def distributions(performances: Performances, velocities: np.ndarray, offsets: np.ndarray | None) -> dict:
    """Mean velocity per drum class (or for the part) and mean offset by
    16th within the beat, of `velocities` / `offsets` at the onsets."""
    onsets = performances.onsets()
    if performances.offsets is None:
        return {"mean_velocity": round(float(velocities[onsets].mean()), 1), "velocity_std": round(float(velocities[onsets].std()), 1)}
    per_class = {
        name: round(float(velocities[..., c][onsets[..., c]].mean()), 1) for c, (name, _, _) in enumerate(vocab.DRUM_CLASSES)
    }
    assert offsets is not None
    beat_position = (np.arange(performances.tokens.shape[1]) % 4)[None, :, None]
    beat_position = np.broadcast_to(beat_position, onsets.shape)
    by_position = {
        str(p): round(float(offsets[onsets & (beat_position == p)].mean()), 3) for p in range(4)
    }
    return {
        "mean_velocity_per_class": per_class,
        "velocity_std": round(float(velocities[onsets].std()), 1),
        "mean_offset_by_16th_of_the_beat": by_position,
        "offset_std_16ths": round(float(offsets[onsets].std()), 3),
    }


def evaluate(model: Humanizer, data: Path, part: str, raw: Path) -> dict:
    """Every number the manifest and models/README.md report: on every
    held-out window of the raw data in `raw`, with the training statistics
    of the converted windows in `data`."""
    train = performances(data, part, "train")
    test = heldout_performances(part, raw)
    velocities, offsets = predict(model, test)
    spread = data_spread(train)
    report = {
        "heldout": "test split, every 2-bar window",
        "heldout_windows": int(len(test.tokens)),
        "onsets": int(test.onsets().sum()),
        "model": errors(test, velocities, offsets),
        "baselines": {
            "grid": errors(test, grid_velocities(test), None if test.offsets is None else np.zeros_like(test.offsets)),
            "jitter": errors(test, *jitter(test, spread)),
            "position_median": errors(test, *position_medians(train, test)),
        },
        "distributions": {
            "data": distributions(test, test.velocities.astype(np.float32), test.offsets),
            "model": distributions(test, velocities, offsets),
        },
    }
    return report


def load(path: Path) -> Humanizer:
    saved = torch.load(path, weights_only=True)
    model = Humanizer(HumanizeSize(**saved["state"]["size"]))
    model.load_state_dict(saved["model"])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["drums", "bass", "melody"], required=True)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--data", type=Path, default=Path("models/work/data"), help="converted windows")
    parser.add_argument("--raw", type=Path, default=Path("../shared/data"), help="folder with groove/ and pop909/")
    args = parser.parse_args()
    checkpoint = args.checkpoint or Path("models/weights") / f"{args.part}_humanize.pt"
    print(json.dumps(evaluate(load(checkpoint), args.data, args.part, args.raw), indent=2))


if __name__ == "__main__":
    main()
