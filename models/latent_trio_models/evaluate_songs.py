"""Scores the song prior as Mittal et al. (2021) do: framewise
self-similarity of pitch and duration.

Every song is 32 2-bar slots (64 bars). Frames are 4 bars with a 2-bar hop;
in each frame the pitches of the note-ons and the notes' durations (in 16ths)
are fitted with Gaussians, and neighbouring frames are compared by the
overlapping area (OA) of their Gaussians. Over a set of songs, the mean and
variance of the OAs are compared with the held-out songs':
Consistency = max(0, 1 - |mean - mean_data| / mean_data) and
Variance = max(0, 1 - |var - var_data| / var_data), for pitch and duration.

Songs scored (bass and melody each over a held-out song's own chords;
drums with the drum class for pitch and the steps to the next hit for
duration):
- `data`: the held-out songs' notes;
- `diffusion`: the prior's songs (DDIM);
- `independent`: a latent drawn from the VAE's prior for every slot;
- `infill_diffusion`: the held-out songs with their middle 16 slots written
  by the prior around the first and last 8 (encoder means);
- `infill_interpolation`: the same middle slots by spherical interpolation
  between slot 8 and slot 25.
Generated sets hold 4 songs per held-out song (over its chords, which a
prior that hears harmony also reads), so that the scores do not hang on one
draw. Latents are decoded greedily by the shipped 2-bar models. For bass and
melody, `in_key` is the share of every set's note-ons in the held-out song's
key at that step (POP909's key annotation).

Run: python -m latent_trio_models.evaluate_songs --group melody
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from . import evaluate, harmony, song_latents, vocab
from .diffusion import Denoiser, DenoiserSize, Normaliser, sample
from .export import load_checkpoint
from .model import MusicVAE

SLOTS = 32
FRAME_BARS = 4
HOP_BARS = 2


def notes(tokens: np.ndarray) -> list[tuple[int, int, int]]:
    """(start step, length in steps, pitch) of a melodic token sequence."""
    found = []
    start, pitch = None, None
    for step, token in enumerate(list(tokens) + [vocab.NOTE_OFF]):
        if token == vocab.NOTE_OFF or token >= 2:
            if start is not None:
                found.append((start, step - start, pitch))
                start = None
            if token >= 2:
                start, pitch = step, int(token) - 2 + vocab.MIN_PITCH
    return found


def drum_events(tokens: np.ndarray) -> list[tuple[int, int, int]]:
    """(step, steps to the next hit, drum class) of every hit of a drum token
    sequence: the drums' stand-ins for pitch and duration."""
    onsets = [step for step, token in enumerate(tokens) if token > 0]
    found = []
    for index, step in enumerate(onsets):
        gap = (onsets[index + 1] if index + 1 < len(onsets) else len(tokens)) - step
        found.extend((step, gap, drum_class) for drum_class in vocab.drum_classes_of(int(tokens[step])))
    return found


def in_key_share(tokens: np.ndarray, keys: np.ndarray) -> tuple[int, int]:
    """(note-ons in the key sounding at their step, note-ons where a key is
    known) of a melodic token sequence."""
    steps = np.flatnonzero(tokens >= 2)
    steps = steps[keys[steps] != harmony.NO_KEY]
    pitch_classes = (tokens[steps] - 2 + vocab.MIN_PITCH) % 12
    return int(harmony.in_scale(pitch_classes, keys[steps]).sum()), len(steps)


def songs_in_key(songs: list[np.ndarray], keys: list[np.ndarray]) -> float:
    """Share of all `songs`' note-ons in the key of their step (`keys`: each
    song's key at every step)."""
    counts = np.array([in_key_share(tokens, song_keys) for tokens, song_keys in zip(songs, keys)])
    return round(float(counts[:, 0].sum() / max(counts[:, 1].sum(), 1)), 4)


def overlapping_area(mean_a: float, var_a: float, mean_b: float, var_b: float) -> float:
    """Area under the smaller of two Gaussian densities (numerically)."""
    sd_a, sd_b = max(np.sqrt(var_a), 1e-3), max(np.sqrt(var_b), 1e-3)
    low = min(mean_a - 6 * sd_a, mean_b - 6 * sd_b)
    high = max(mean_a + 6 * sd_a, mean_b + 6 * sd_b)
    x = np.linspace(low, high, 2001)

    def density(mean: float, sd: float) -> np.ndarray:
        return np.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))

    return float(np.trapezoid(np.minimum(density(mean_a, sd_a), density(mean_b, sd_b)), x))


def frame_overlaps(tokens: np.ndarray, part: str = "melody") -> dict[str, list[float]]:
    """OAs of neighbouring 4-bar frames (2-bar hop) of one song's tokens, for
    pitch and duration (drums: drum class and the steps to the next hit);
    frames without notes are skipped."""
    steps_per_frame = FRAME_BARS * vocab.STEPS_PER_BAR
    hop = HOP_BARS * vocab.STEPS_PER_BAR
    song_notes = drum_events(tokens) if part == "drums" else notes(tokens)
    stats = []
    for start in range(0, len(tokens) - steps_per_frame + 1, hop):
        inside = [n for n in song_notes if start <= n[0] < start + steps_per_frame]
        if not inside:
            stats.append(None)
            continue
        pitches = np.array([n[2] for n in inside], dtype=np.float64)
        lengths = np.array([n[1] for n in inside], dtype=np.float64)
        stats.append(((pitches.mean(), pitches.var()), (lengths.mean(), lengths.var())))
    out: dict[str, list[float]] = {"pitch": [], "duration": []}
    for a, b in zip(stats, stats[1:]):
        if a is None or b is None:
            continue
        out["pitch"].append(overlapping_area(*a[0], *b[0]))
        out["duration"].append(overlapping_area(*a[1], *b[1]))
    return out


def overlap_statistics(songs: list[np.ndarray], part: str = "melody") -> dict[str, tuple[float, float]]:
    """Mean and variance of all neighbouring-frame OAs of `songs`."""
    pooled: dict[str, list[float]] = {"pitch": [], "duration": []}
    for tokens in songs:
        for name, values in frame_overlaps(tokens, part).items():
            pooled[name].extend(values)
    return {name: (float(np.mean(v)), float(np.var(v))) for name, v in pooled.items()}


def consistency_and_variance(stats: dict, truth: dict) -> dict[str, float]:
    """The paper's two scores per quantity, against the data's statistics."""

    def closeness(value: float, reference: float) -> float:
        if reference == 0:
            return float(value == 0)
        return round(max(0.0, 1 - abs(value - reference) / reference), 4)

    out = {}
    for name, (mean, var) in stats.items():
        mean_gt, var_gt = truth[name]
        out[f"{name}_consistency"] = closeness(mean, mean_gt)
        out[f"{name}_variance"] = closeness(var, var_gt)
        out[f"{name}_oa_mean"] = round(mean, 4)
        out[f"{name}_oa_var"] = round(var, 5)
    return out


@torch.no_grad()
def decode_song(model: MusicVAE, latents: np.ndarray, chords: np.ndarray | None) -> np.ndarray:
    """Slot latents [32, L] (over chords [32, 32]) -> tokens [32 * 32], greedy."""
    z = torch.as_tensor(latents, dtype=torch.float32)
    tokens = model.sample(z, temperature=0.0, chords=evaluate.chord_inputs(chords))
    return tokens.numpy().reshape(-1)


def slerp_slots(first: np.ndarray, last: np.ndarray, count: int) -> np.ndarray:
    """`count` latents between two, by spherical interpolation (ends excluded)."""
    a, b = torch.as_tensor(first), torch.as_tensor(last)
    return np.stack([evaluate.slerp(a, b, (k + 1) / (count + 1)).numpy() for k in range(count)])


def load_prior(path: Path) -> tuple[Denoiser, Normaliser, dict]:
    saved = torch.load(path, weights_only=True)
    model = Denoiser(DenoiserSize(**saved["state"]["size"]))
    model.load_state_dict(saved["model"])
    model.eval()
    scaling = saved["normaliser"]
    return model, Normaliser(np.array(scaling["low"], np.float32), np.array(scaling["high"], np.float32)), saved["state"]


def score_songs(
    group: str,
    prior_path: Path,
    latents_path: Path,
    weights: Path,
    data_dir: Path,
    steps: int,
    resample: int = 1,
    seed: int = 0,
    samples: int = 4,
    split: str = "test",
) -> dict:
    """Every score of the module doc for the parts of `group`, on the
    held-out songs of `split` of at least 32 slots (their first 32);
    `samples` generated songs per held-out song (over its chords), for the
    sets that draw noise; infilling resamples each step `resample` times.
    Sampler settings are chosen
    on the validation songs and reported on the test songs."""
    parts = song_latents.GROUPS[group]
    prior, normaliser, _ = load_prior(prior_path)
    vaes = {part: load_checkpoint(weights / f"{part}_2bar.pt")[0] for part in parts}
    arrays = song_latents.load(latents_path)
    sequences = song_latents.groove_sequences(data_dir) if group == "drums" else song_latents.pop909_sequences(data_dir)
    songs = {s["song"]: s for s in sequences if s["split"] == split}
    starts, lengths, ids = (arrays[f"{group}_{split}_{k}"] for k in ("start", "length", "song"))
    chosen = [(int(start), str(song)) for start, length, song in zip(starts, lengths, ids) if length >= SLOTS]
    latents = np.stack([arrays[f"{group}_{split}"][start : start + SLOTS] for start, _ in chosen])
    chords = [songs[song]["chords"][:SLOTS] if "chords" in songs[song] else None for _, song in chosen]
    slot_harmony = None
    if prior.size.harmony:
        slot_harmony = np.stack([arrays[f"{group}_{split}_harmony"][start : start + SLOTS] for start, _ in chosen])
        slot_harmony = torch.as_tensor(np.repeat(slot_harmony, samples, axis=0))
    # The generated songs: `samples` per held-out song, over its chords.
    latents = np.repeat(latents, samples, axis=0)
    chords = [c for c in chords for _ in range(samples)]
    count = len(latents)
    generator = torch.Generator().manual_seed(seed)

    def prior_songs(fixed: np.ndarray | None = None, keep: np.ndarray | None = None) -> np.ndarray:
        scaled = sample(
            prior,
            count,
            steps=steps,
            generator=generator,
            fixed=None if fixed is None else torch.as_tensor(normaliser.forward(fixed)),
            keep=None if keep is None else torch.as_tensor(keep),
            resample=resample,
            harmony=slot_harmony,
        )
        return normaliser.inverse(scaled.numpy())

    keep = np.zeros((count, SLOTS), dtype=bool)
    keep[:, :8] = True
    keep[:, 24:] = True
    width = latents.shape[2] // len(parts)
    interpolated = latents.copy()
    for row in range(count):
        for index in range(len(parts)):
            dims = slice(index * width, (index + 1) * width)
            interpolated[row, 8:24, dims] = slerp_slots(latents[row, 7, dims], latents[row, 24, dims], 16)
    one_each = slice(None, None, samples)
    sets = {
        "reconstruction": latents[one_each],
        "diffusion": prior_songs(),
        "independent": np.random.default_rng(seed).standard_normal(latents.shape).astype(np.float32),
        "infill_diffusion": prior_songs(latents, keep),
        "infill_interpolation": interpolated[one_each],
    }
    result: dict = {
        "split": split,
        "songs": len(chosen),
        "generated_per_song": samples,
        "ddim_steps": steps,
        "infill_resample": resample,
    }
    for index, part in enumerate(parts):
        dims = slice(index * width, (index + 1) * width)
        data_tokens = [songs[song][part][:SLOTS].reshape(-1) for _, song in chosen]
        truth = overlap_statistics(data_tokens, part)
        scores = {"data": consistency_and_variance(truth, truth)}
        keys = [songs[song]["keys"][:SLOTS].reshape(-1) if "keys" in songs[song] else None for _, song in chosen]
        for name, song_latents_ in sets.items():
            stride = 1 if len(song_latents_) == count else samples
            rows = range(len(song_latents_))
            decoded = [decode_song(vaes[part], song_latents_[row, :, dims], chords[row * stride]) for row in rows]
            scores[name] = consistency_and_variance(overlap_statistics(decoded, part), truth)
            if part != "drums":
                scores[name]["in_key"] = songs_in_key(decoded, [keys[row * stride // samples] for row in rows])
        if part != "drums":
            scores["data"]["in_key"] = songs_in_key(data_tokens, keys)
        result[part] = scores
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", choices=list(song_latents.GROUPS), default="melody")
    parser.add_argument("--latents", type=Path, default=Path("models/work/data/song_latents.npz"))
    parser.add_argument("--weights", type=Path, default=Path("models/weights"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps")
    parser.add_argument("--resample", type=int, default=1, help="tries of each infilling step (RePaint's resampling)")
    parser.add_argument("--split", choices=["validation", "test"], default="test", help="the held-out songs to score on")
    parser.add_argument("--prior", type=Path, help="the prior's weights (default: <weights>/song_<group>.pt)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated songs' noise")
    args = parser.parse_args()
    torch.set_num_threads(1)
    prior = args.prior or args.weights / f"song_{args.group}.pt"
    scores = score_songs(
        args.group, prior, args.latents, args.weights, args.data, args.steps, args.resample, seed=args.seed, split=args.split
    )
    print(json.dumps(scores, indent=1))


if __name__ == "__main__":
    main()
