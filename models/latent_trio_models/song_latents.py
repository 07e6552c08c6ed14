"""Whole songs as sequences of 2-bar latents: the training data of the song
prior (Mittal et al. 2021 train their diffusion model on sequences of
MusicVAE latents).

Each song is cut into consecutive 2-bar slots from its first bar and every
slot is encoded by the shipped 2-bar model (the encoder mean; bass and melody
over the song's own chords). A POP909 song's runs of 4/4 bars are joined (a
bar of another metre between them is left out, and an odd bar at the end of
a run), so a song is one sequence. Bass and melody of a song share one
sequence of slots: their latents side by side (the prior writes both, so the
bass keeps following the melody's sections). Drums have sequences of their
own (Groove sessions).

Training songs are encoded in every key that keeps all their notes in range
(as the VAEs were trained); held-out songs in their own key only. Bass and
melody slots also store their harmony (`harmony.slot_harmony`, in the key
the slot was encoded in): the song prior writes a song for the chords it
will be played over.

Run: python -m latent_trio_models.song_latents   (about 5 minutes on one
     thread; writes models/work/data/song_latents.npz)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from . import data, evaluate, harmony, vocab
from .export import load_checkpoint
from .model import MusicVAE
from .train import TRANSPOSE

SLOT_STEPS = 2 * vocab.STEPS_PER_BAR
# Slot groups stored per split: name -> parts whose latents sit side by side
# in a slot. One part each: a prior over bass and melody side by side wrote
# both worse than a prior of their own each (models/README.md "Song prior").
GROUPS = {"drums": ("drums",), "bass": ("bass",), "melody": ("melody",)}


def slots(tokens: np.ndarray) -> np.ndarray:
    """[steps] -> [slots, SLOT_STEPS]: whole 2-bar slots from the first bar."""
    count = len(tokens) // SLOT_STEPS
    return tokens[: count * SLOT_STEPS].reshape(count, SLOT_STEPS)


def pop909_sequences(data_dir: Path) -> list[dict]:
    """Per POP909 song: its split, and bass, melody, chords and keys as
    slots, its runs joined."""
    counts = data.Counts()
    by_song: dict[str, list[dict]] = {}
    for run in data.load_pop909_split(data_dir, None, counts):
        song = run["melody"].song_id.split(".")[0]
        by_song.setdefault(song, []).append(run)
    songs = []
    for song_id, runs in by_song.items():
        parts = {
            name: np.concatenate([slots(run[name].tokens) for run in runs]) for name in ("bass", "melody")
        }
        chords = np.concatenate([slots(run["melody"].chords) for run in runs])
        keys = np.concatenate([slots(run["melody"].keys) for run in runs])
        if len(chords):
            songs.append({"song": song_id, "split": runs[0]["melody"].split, "chords": chords, "keys": keys, **parts})
    return songs


def groove_sequences(data_dir: Path) -> list[dict]:
    """Per Groove session: its split and drums as slots."""
    songs = []
    for session in data.load_groove(data_dir, data.Counts()):
        tokens = slots(session.tokens)
        if len(tokens):
            songs.append({"song": session.song_id, "split": session.split, "drums": tokens})
    return songs


def key_shifts(song: dict) -> list[int]:
    """Transpositions that keep every note of the song's bass and melody in
    their models' ranges."""
    shifts = []
    ranges = {"bass": (vocab.BASS_MIN_PITCH, vocab.BASS_MAX_PITCH), "melody": (vocab.MIN_PITCH, vocab.MAX_PITCH)}
    for shift in TRANSPOSE:
        fits = True
        for part, (low, high) in ranges.items():
            notes = song[part][song[part] >= 2]
            if notes.size:
                pitches = notes - 2 + vocab.MIN_PITCH
                fits &= bool(pitches.min() + shift >= low and pitches.max() + shift <= high)
        if fits:
            shifts.append(shift)
    return shifts or [0]


@torch.no_grad()
def encode(model: MusicVAE, tokens: np.ndarray, chords: np.ndarray | None, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Encoder means and standard deviations of slots [n, SLOT_STEPS] (with
    their chord masks)."""
    means, spreads = [], []
    for start in range(0, len(tokens), batch):
        x = torch.as_tensor(tokens[start : start + batch].astype(np.int64))
        c = None if chords is None else evaluate.chord_inputs(chords[start : start + batch])
        mu, sigma = model.encode(x, c)
        means.append(mu.numpy())
        spreads.append(sigma.numpy())
    return np.concatenate(means).astype(np.float32), np.concatenate(spreads).astype(np.float32)


def song_latents(models: dict[str, MusicVAE], songs: list[dict], group: str) -> dict[str, np.ndarray]:
    """Per split: every song's slot latents (its parts side by side), end to
    end, with each song's first slot, slot count, id and key shift (and, for
    songs with chords, every slot's harmony); and the
    encoder's mean standard deviation of each latent dimension over the
    training slots (how finely the 2-bar model reads that dimension)."""
    parts = GROUPS[group]
    out: dict[str, np.ndarray] = {}
    for split in data.SPLITS:
        latents, spreads, harmonies, starts, lengths, ids, shifts = [], [], [], [], [], [], []
        total = 0
        for song in (s for s in songs if s["split"] == split):
            keys = key_shifts(song) if group != "drums" and split == "train" else [0]
            for shift in keys:
                columns, column_spreads = [], []
                for part in parts:
                    tokens = song[part]
                    if part != "drums":
                        tokens = np.where(tokens >= 2, tokens + shift, tokens)
                    chords = harmony.transpose_chords(song["chords"], shift) if "chords" in song else None
                    mean, spread = encode(models[part], tokens, chords)
                    columns.append(mean)
                    column_spreads.append(spread)
                if "chords" in song:
                    harmonies.append(harmony.slot_harmony(harmony.transpose_chords(song["chords"], shift)))
                latents.append(np.concatenate(columns, axis=1))
                spreads.append(np.concatenate(column_spreads, axis=1))
                starts.append(total)
                lengths.append(len(latents[-1]))
                ids.append(song["song"])
                shifts.append(shift)
                total += lengths[-1]
        out[f"{group}_{split}"] = np.concatenate(latents)
        if harmonies:
            out[f"{group}_{split}_harmony"] = np.concatenate(harmonies).astype(np.float32)
        if split == "train":
            out[f"{group}_posterior_sd"] = np.concatenate(spreads).mean(0)
        out[f"{group}_{split}_start"] = np.array(starts, dtype=np.int64)
        out[f"{group}_{split}_length"] = np.array(lengths, dtype=np.int64)
        out[f"{group}_{split}_song"] = np.array(ids).astype(str)
        out[f"{group}_{split}_shift"] = np.array(shifts, dtype=np.int8)
    return out


def load(path: Path = Path("models/work/data/song_latents.npz")) -> dict[str, np.ndarray]:
    """The arrays `main` wrote."""
    with np.load(path) as archive:
        return {key: archive[key] for key in archive.files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--weights", type=Path, default=Path("models/weights"))
    parser.add_argument("--out", type=Path, default=Path("models/work/data/song_latents.npz"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = {part: load_checkpoint(args.weights / f"{part}_2bar.pt")[0] for part in ("drums", "bass", "melody")}
    arrays = {}
    arrays.update(song_latents(models, groove_sequences(args.data), "drums"))
    pop909 = pop909_sequences(args.data)
    for group in ("bass", "melody"):
        arrays.update(song_latents(models, pop909, group))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    for group in GROUPS:
        for split in data.SPLITS:
            lengths = arrays[f"{group}_{split}_length"]
            print(f"{group} {split}: {len(lengths)} sequences, {lengths.sum()} slots, median {np.median(lengths):.0f}, >=32: {(lengths >= 32).sum()}")


if __name__ == "__main__":
    main()
