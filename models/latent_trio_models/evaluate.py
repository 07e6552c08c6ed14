"""Held-out evaluation of a trained MusicVAE and its latent axes.

Everything here reads held-out windows only: the Groove `test` split and the
POP909 test songs, converted straight from the raw MIDI so that CI can rebuild
exactly the same examples from ../shared/data.

The full report (with the attribute vectors) is written by the exporter into
each manifest; this module's command line gives the token accuracies of a
checkpoint while it trains:

Run: python -m latent_trio_models.evaluate --part drums [--checkpoint PATH]
     python -m latent_trio_models.evaluate --part melody --harmony   (the data's own harmony figures)
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import data, harmony, vocab
from .attributes import measure
from .model import MusicVAE, kl_divergence

ATTRIBUTE_EXAMPLES = 128
ATTRIBUTE_STEPS = (-2.0, -1.0, 0.0, 1.0, 2.0)
INTERPOLATION_PAIRS = 32
INTERPOLATION_STEPS = 11
# Batch for scoring every held-out window without holding all their logits.
BATCH = 512


@dataclass
class Windows:
    """2-bar windows: tokens [windows, 32], and for bass and melody
    the chord masks and keys of every step (harmony)."""

    tokens: np.ndarray
    chords: np.ndarray | None = None
    keys: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    def head(self, count: int) -> Windows:
        """The first `count` windows."""
        cut = lambda values: None if values is None else values[:count]  # noqa: E731
        return Windows(self.tokens[:count], cut(self.chords), cut(self.keys))


def heldout_windows(part: str, data_dir: Path, limit: int | None = None, bars: int = data.WINDOW_BARS) -> Windows:
    """Every distinct test window of `bars` bars of `part` (or the first
    `limit`), in song order, each once (as the converter keeps them: 2-bar
    windows every bar, 16-bar windows every 4 bars)."""
    counts = data.Counts()
    if part == "drums":
        songs = data.load_groove_split(data_dir, "test", counts)
    else:
        songs = [song[part] for song in data.load_pop909_split(data_dir, "test", counts)]
    length = bars * vocab.STEPS_PER_BAR
    hop = data.window_hop(bars)
    found = ((song, start, length) for song in songs for start in data.windows(song, part, bars, hop, counts))
    tokens, chords, keys = [], [], []
    for song, start, _ in data.unique_windows(found, counts, "held-out"):
        tokens.append(song.tokens[start : start + length])
        if song.chords is not None:
            chords.append(song.chords[start : start + length])
            keys.append(song.keys[start : start + length])
        if len(tokens) == limit:
            break
    return Windows(
        np.array(tokens, dtype=np.int64),
        np.array(chords, dtype=np.uint16) if chords else None,
        np.array(keys, dtype=np.int8) if keys else None,
    )


def chord_inputs(chords: np.ndarray | None) -> torch.Tensor | None:
    """[batch, steps] chord masks -> [batch, steps, 13] model inputs."""
    return None if chords is None else torch.as_tensor(harmony.chroma(chords))


def batches(heldout: Windows, model: MusicVAE):
    """(tokens, chord inputs or None) in batches; chords only for a model that reads them."""
    for start in range(0, len(heldout), BATCH):
        x = torch.as_tensor(heldout.tokens[start : start + BATCH], dtype=torch.long)
        chords = heldout.chords if model.size.chord_size else None
        yield x, chord_inputs(None if chords is None else chords[start : start + BATCH])


def reconstructions(model: MusicVAE, heldout: Windows, refine_kl_weight: float | None = None):
    """Per batch, the true tokens, their reconstructions and the latents
    they decode from: the encoder mean (or, given `refine_kl_weight`, the
    latent `MusicVAE.refine` finds with it) decoded teacher-forced (argmax given the true
    previous tokens), and fully sampled from the model's own previous tokens
    at temperature 1.0 and greedily; then the latents, sigma and chords."""
    model.eval()
    generator = torch.Generator().manual_seed(0)
    for x, chords in batches(heldout, model):
        if refine_kl_weight is not None:
            z, sigma = model.refine(x, chords, refine_kl_weight)
        else:
            with torch.no_grad():
                z, sigma = model.encode(x, chords)
        with torch.no_grad():
            yield x, {
                "teacher_forced_accuracy": model.teacher_forced_logits(x, z, chords).argmax(-1),
                "sampled_accuracy_t1": model.sample(z, temperature=1.0, generator=generator, chords=chords),
                "greedy_accuracy": model.sample(z, temperature=0.0, chords=chords),
            }, (z, sigma, chords)


def token_accuracy(model: MusicVAE, heldout: Windows) -> dict[str, float]:
    """MusicVAE's reconstruction accuracies (see `reconstructions`)."""
    correct = {"teacher_forced_accuracy": 0, "sampled_accuracy_t1": 0, "greedy_accuracy": 0}
    for x, decoded, _ in reconstructions(model, heldout):
        for name, tokens in decoded.items():
            correct[name] += int((tokens == x).sum())
    return {name: round(count / heldout.tokens.size, 4) for name, count in correct.items()}


def refined_scores(model: MusicVAE, heldout: Windows, part: str, kl_weight: float) -> dict:
    """The accuracies, NLL per window (the negative ELBO) and greedy onset
    F1 of every window decoded from its refined latent (`MusicVAE.refine`
    with `kl_weight`): what the plugin plays for a clip it encodes."""
    correct = {"teacher_forced_accuracy": 0, "sampled_accuracy_t1": 0, "greedy_accuracy": 0}
    nll, kl, greedy = 0.0, 0.0, []
    for x, decoded, (z, sigma, chords) in reconstructions(model, heldout, kl_weight):
        for name, tokens in decoded.items():
            correct[name] += int((tokens == x).sum())
        with torch.no_grad():
            nll += float(model.negative_elbo(x, z, sigma, chords).sum())
            kl += float(kl_divergence(z, sigma).sum())
        greedy.append(decoded["greedy_accuracy"].numpy())
    return {
        **{name: round(count / heldout.tokens.size, 4) for name, count in correct.items()},
        "nll_per_window": round(nll / len(heldout), 2),
        "kl_per_window": round(kl / len(heldout), 2),
        "greedy_onsets": onset_f1(np.concatenate(greedy), heldout.tokens, part),
    }


# Mixing weights of the smoothed position+bigram baseline: P(token | step,
# previous token), P(token | step), P(token).
BASELINE_MIX = (0.6, 0.3, 0.1)


def baselines(train: np.ndarray, heldout: np.ndarray, vocab_size: int) -> dict[str, float]:
    """Two models without a latent, fitted on the training windows and scored
    on the held-out ones: always the most frequent token, and the best
    guess from the step and the previous token (teacher-forced accuracy, and
    the per-window negative log-likelihood of a smoothed version, in nats)."""
    steps = train.shape[1]
    start = vocab_size  # the "previous token" of step 0
    previous_train = np.concatenate([np.full((len(train), 1), start), train[:, :-1]], axis=1)
    bigram = np.zeros((steps, vocab_size + 1, vocab_size))
    np.add.at(bigram, (np.arange(steps)[None, :].repeat(len(train), 0), previous_train, train), 1.0)
    unigram_step = bigram.sum(1) + 1e-9
    unigram = np.bincount(train.ravel(), minlength=vocab_size) + 1.0
    previous = np.concatenate([np.full((len(heldout), 1), start), heldout[:, :-1]], axis=1)
    step_index = np.arange(steps)[None, :].repeat(len(heldout), 0)
    counts = bigram[step_index, previous]  # [windows, steps, vocab]
    seen = counts.sum(-1, keepdims=True)
    guess = np.where(seen[..., 0] > 0, counts.argmax(-1), unigram_step.argmax(-1)[step_index])
    w_bigram, w_step, w_global = BASELINE_MIX
    probability = (
        w_bigram * np.where(seen > 0, counts / np.maximum(seen, 1), unigram_step[step_index] / unigram_step[step_index].sum(-1, keepdims=True))
        + w_step * unigram_step[step_index] / unigram_step[step_index].sum(-1, keepdims=True)
        + w_global * unigram / unigram.sum()
    )
    chosen = np.take_along_axis(probability, heldout[..., None], -1)[..., 0]
    return {
        "most_frequent_token_accuracy": round(float((heldout == np.bincount(train.ravel()).argmax()).mean()), 4),
        "position_bigram_accuracy": round(float((guess == heldout).mean()), 4),
        "position_bigram_nll_per_window": round(float(-np.log(chosen).sum(-1).mean()), 2),
    }


def nll_per_window(model: MusicVAE, windows: Windows) -> dict[str, float]:
    """Per window, in nats: the reconstruction's negative log-likelihood
    decoding from the encoder mean (teacher-forced) and the KL of the
    posterior from the prior; their sum bounds the model's NLL like the
    baseline's."""
    model.eval()
    reconstruction = kl = 0.0
    with torch.no_grad():
        for x, chords in batches(windows, model):
            mu, sigma = model.encode(x, chords)
            logits = model.teacher_forced_logits(x, mu, chords)
            reconstruction += float(torch.nn.functional.cross_entropy(logits.transpose(1, 2), x, reduction="sum"))
            kl += float(kl_divergence(mu, sigma).sum())
    count = len(windows)
    return {
        "reconstruction": round(reconstruction / count, 2),
        "kl": round(kl / count, 2),
        "total": round((reconstruction + kl) / count, 2),
    }


def onset_f1(decoded: np.ndarray, truth: np.ndarray, part: str) -> dict[str, float]:
    """F1 of decoded against true onsets. Drums: per hit (step and class), and
    per class; melodic: note-ons by step alone and by step and pitch."""
    def f1(found: np.ndarray, wanted: np.ndarray, hits: np.ndarray | None = None) -> float:
        """2 * hits / (found + wanted); hits default to the onsets in both."""
        hits = found & wanted if hits is None else hits
        total = int(found.sum()) + int(wanted.sum())
        return round(2 * int(hits.sum()) / total, 4) if total else 1.0

    if part == "drums":
        found, wanted = vocab.drum_hits(decoded), vocab.drum_hits(truth)
        return {
            "per_hit_f1": f1(found, wanted),
            "per_class_f1": {name: f1(found[..., k], wanted[..., k]) for k, (name, _, _) in enumerate(vocab.DRUM_CLASSES)},
        }
    found, wanted = decoded >= 2, truth >= 2
    return {"note_on_f1_timing": f1(found, wanted), "note_on_f1_with_pitch": f1(found, wanted, found & wanted & (decoded == truth))}


def reconstruction_f1(model: MusicVAE, heldout: Windows, part: str) -> dict:
    """Onset F1 of the greedy decode of each window's encoder mean."""
    model.eval()
    decoded = []
    with torch.no_grad():
        for x, chords in batches(heldout, model):
            mu, _ = model.encode(x, chords)
            decoded.append(model.sample(mu, temperature=0.0, chords=chords).numpy())
    return onset_f1(np.concatenate(decoded), heldout.tokens, part)


def harmony_shares(tokens: np.ndarray, chords: np.ndarray, keys: np.ndarray) -> dict[str, float]:
    """Share of note-ons that are tones of the chord sounding at their step
    (steps with a chord), and that are in the key's scale (steps with a key;
    natural minor for minor keys)."""
    onsets = tokens >= 2
    pitch_class = (np.where(onsets, tokens, 2) - 2 + vocab.MIN_PITCH) % 12
    chord_tone = (chords.astype(np.int32) >> pitch_class) & 1 == 1
    with_chord = onsets & (chords != harmony.NO_CHORD)
    in_key = harmony.in_scale(pitch_class, keys)
    with_key = onsets & (keys != harmony.NO_KEY)
    return {
        "chord_tone_share": round(float(chord_tone[with_chord].mean()), 4) if with_chord.any() else None,
        "in_key_share": round(float(in_key[with_key].mean()), 4) if with_key.any() else None,
    }


def sounding(tokens: np.ndarray) -> np.ndarray:
    """The MIDI pitch sounding at each step of a melodic token sequence (-1: none)."""
    pitches = np.full(len(tokens), -1, dtype=np.int64)
    current = -1
    for step, token in enumerate(tokens):
        if token == vocab.NOTE_OFF:
            current = -1
        elif token >= 2:
            current = int(token) - 2 + vocab.MIN_PITCH
        pitches[step] = current
    return pitches


def pop909_harmony(data_dir: Path) -> dict:
    """The held-out POP909 songs' own figures, to put beside what the plugin
    plays (plugin/benches/harmony.rs): chord-tone and in-key shares of bass
    and melody note-ons, and the share of beats where both sound and are a
    minor second or a tritone apart."""
    counts = data.Counts()
    report: dict[str, float | None] = {}
    clashes = shared = 0
    for song in data.load_pop909_split(data_dir, "test", counts):
        bass, melody = song["bass"], song["melody"]
        low, high = sounding(bass.tokens), sounding(melody.tokens)
        beats = np.arange(0, len(low), 4)
        both = (low[beats] >= 0) & (high[beats] >= 0)
        interval = (high[beats] - low[beats]) % 12
        clashes += int((both & np.isin(interval, (1, 6, 11))).sum())
        shared += int(both.sum())
    for part in ("bass", "melody"):
        songs = [song[part] for song in data.load_pop909_split(data_dir, "test", counts)]
        shares = harmony_shares(
            np.concatenate([s.tokens for s in songs]),
            np.concatenate([s.chords for s in songs]),
            np.concatenate([s.keys for s in songs]),
        )
        report[f"{part}_chord_tones"] = shares["chord_tone_share"]
        report[f"{part}_in_key"] = shares["in_key_share"]
    report["clashes_on_beats"] = round(clashes / max(shared, 1), 4)
    return report


def harmony_check(model: MusicVAE, heldout: Windows, samples_per_window: int = 1) -> dict:
    """Chord-tone and in-key shares of the held-out data, and of prior
    samples (z ~ N(0, I), temperature 1) decoded on the held-out chord
    progressions: a chord-conditioned model should follow the chords about as
    closely as the music it learned from."""
    generator = torch.Generator().manual_seed(1)
    samples = []
    model.eval()
    with torch.no_grad():
        for _ in range(samples_per_window):
            for x, chords in batches(heldout, model):
                z = torch.randn(len(x), model.size.z_size, generator=generator)
                samples.append(model.sample(z, temperature=1.0, generator=generator, chords=chords).numpy())
    repeat = lambda values: np.concatenate([values] * samples_per_window)  # noqa: E731
    return {
        "description": "note-ons that are chord tones (steps with a chord) and in the key's scale (major, or natural minor)",
        "heldout_data": harmony_shares(heldout.tokens, heldout.chords, heldout.keys),
        "prior_samples_on_heldout_chords": harmony_shares(np.concatenate(samples), repeat(heldout.chords), repeat(heldout.keys)),
    }


# Pitch attributes are undefined for a window with too few notes (measure()
# gives 0 there); averaging those zeros in would read as "lower register".
NOTES_NEEDED = {"register": 1, "interval": 2}


def attribute_curves(
    model: MusicVAE, windows: Windows, part: str, name: str, vector: np.ndarray, steps=ATTRIBUTE_STEPS
) -> np.ndarray:
    """The attribute `name` measured on the greedy decode of mu + t * vector,
    for each window (rows) and each t in `steps` (columns); NaN where the
    decode has too few notes to measure it (register, interval)."""
    x, chords = next(batches(windows, model))
    direction = torch.as_tensor(vector, dtype=torch.float32)
    curves = np.full((len(x), len(steps)), np.nan)
    with torch.no_grad():
        mu, _ = model.encode(x, chords)
        for column, t in enumerate(steps):
            decoded = model.sample(mu + t * direction, 0.0, chords=chords).numpy()
            values = measure(name, decoded, part)
            enough = (decoded >= 2).sum(-1) >= NOTES_NEEDED.get(name, 0)
            curves[:, column] = np.where(enough, values, np.nan)
    return curves


def monotonic_share(curves: np.ndarray) -> float:
    """Share of windows whose attribute never falls as t rises, and rises in
    all (over the windows measurable at every t)."""
    measurable = curves[~np.isnan(curves).any(axis=1)]
    if len(measurable) == 0:
        return 0.0
    rising = (np.diff(measurable, axis=1) >= 0).all(axis=1) & (measurable[:, -1] > measurable[:, 0])
    return round(float(rising.mean()), 4)


def calibrate(model: MusicVAE, windows: Windows, part: str, name: str, vector: np.ndarray, spread: float) -> float:
    """The factor that makes `vector` move the attribute by `spread` (the
    data's interquartile range) from t = -1 to t = +1, found by rescaling
    on measured decodes (the response is not linear, so three rounds)."""
    scale = 1.0
    for _ in range(3):
        curves = attribute_curves(model, windows, part, name, scale * vector, (-1.0, 1.0))
        moved = float(np.nanmean(curves[:, 1]) - np.nanmean(curves[:, 0]))
        if not moved > 0:
            break
        scale = float(np.clip(scale * spread / moved, 0.05, 20.0))
    return scale


def attribute_check(
    model: MusicVAE, heldout: Windows, part: str, vectors: dict[str, np.ndarray]
) -> dict[str, dict[str, float | None]]:
    """Mean measured attribute after decoding mu + t * vector, for each t
    (register and interval: over the decoded windows that have the notes to
    measure them; None if none has), and the share of windows for which the
    knob moves its attribute monotonically."""
    report = {}
    for name, vector in vectors.items():
        curves = attribute_curves(model, heldout.head(ATTRIBUTE_EXAMPLES), part, name, vector)
        report[name] = {
            f"{t:+.0f}": (round(float(np.nanmean(column)), 3) if (~np.isnan(column)).any() else None)
            for t, column in zip(ATTRIBUTE_STEPS, curves.T)
        }
        report[name]["monotonic_share"] = monotonic_share(curves)
    return report


def per_bar_accuracy(model: MusicVAE, heldout: Windows) -> dict[str, list[float]]:
    """Teacher-forced and sampled (T=1) accuracy of each bar of the window,
    from the encoder mean: where a long decode loses its way."""
    bars = model.size.bars
    correct = {"teacher_forced": np.zeros(bars), "sampled_t1": np.zeros(bars)}
    for x, decoded, _ in reconstructions(model, heldout):
        for name, key in (("teacher_forced", "teacher_forced_accuracy"), ("sampled_t1", "sampled_accuracy_t1")):
            correct[name] += (decoded[key] == x).view(len(x), bars, -1).sum((0, 2)).numpy()
    per_bar = heldout.tokens.size / bars
    return {name: (count / per_bar).round(4).tolist() for name, count in correct.items()}


# Bar lags whose repeats the structure check reports.
STRUCTURE_LAGS = (1, 2, 4, 8)


def bar_similarity(tokens: np.ndarray) -> np.ndarray:
    """[windows, steps] -> [windows, bars, bars]: the share of 16th steps on
    which bar i and bar j hold the same token."""
    bars = tokens.reshape(len(tokens), -1, vocab.STEPS_PER_BAR)
    return (bars[:, :, None, :] == bars[:, None, :, :]).mean(-1)


def structure(tokens: np.ndarray) -> dict:
    """How a set of 16-bar windows repeats itself: per lag, the share of bar
    pairs that lag apart that are identical, and their mean step agreement;
    and the mean self-similarity matrix (to compare with the data's)."""
    similarity = bar_similarity(tokens)
    bars = similarity.shape[1]
    lags = {}
    for lag in STRUCTURE_LAGS:
        pairs = np.stack([similarity[:, k, k - lag] for k in range(lag, bars)], axis=1)
        lags[str(lag)] = {"identical": round(float((pairs == 1.0).mean()), 4), "agreement": round(float(pairs.mean()), 4)}
    return {"by_lag": lags, "matrix": similarity.mean(0)}


def structure_check(models: dict[str, MusicVAE], heldout: Windows) -> dict:
    """The bar-to-bar structure of the held-out data and of each model's prior
    samples (z ~ N(0, I), T=1, over the held-out windows' chords): a model with
    song-like structure repeats and varies bars about as the data does; a loop
    repeats everything and noise nothing. `matrix_distance` is the mean
    absolute difference between a model's mean self-similarity matrix and the
    data's."""
    data_structure = structure(heldout.tokens)
    report = {"heldout_data": {"by_lag": data_structure["by_lag"]}}
    for name, model in models.items():
        generator = torch.Generator().manual_seed(2)
        model.eval()
        with torch.no_grad():
            samples = np.concatenate(
                [
                    model.sample(torch.randn(len(x), model.size.z_size, generator=generator), 1.0, generator, chords).numpy()
                    for x, chords in batches(heldout, model)
                ]
            )
        found = structure(samples)
        report[name] = {
            "by_lag": found["by_lag"],
            "matrix_distance": round(float(np.abs(found["matrix"] - data_structure["matrix"]).mean()), 4),
        }
    return report


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    cos = torch.clamp((a * b).sum(-1, keepdim=True) / (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True)), -1, 1)
    omega = torch.acos(cos)
    sin = torch.sin(omega).clamp(min=1e-6)
    return torch.sin((1 - t) * omega) / sin * a + torch.sin(t * omega) / sin * b


def interpolation_check(model: MusicVAE, heldout: Windows) -> list[float]:
    """Mean Hamming distance (share of steps that differ) from the start
    sequence along a slerp between the latents of two held-out windows (over
    the first window's chords)."""
    x, chords = next(batches(heldout.head(2 * INTERPOLATION_PAIRS), model))
    with torch.no_grad():
        mu, _ = model.encode(x, chords)
        a, b = mu[0::2], mu[1::2]
        chords = None if chords is None else chords[0::2]
        start = model.sample(a, 0.0, chords=chords)
        return [
            round((model.sample(slerp(a, b, t), 0.0, chords=chords) != start).float().mean().item(), 4)
            for t in np.linspace(0, 1, INTERPOLATION_STEPS)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["drums", "bass", "melody"], required=True)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--harmony", action="store_true", help="only the held-out POP909 songs' own harmony figures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.harmony:
        print(json.dumps(pop909_harmony(args.data)))
        return
    from .export import load_checkpoint  # the exporter imports this module

    model, state = load_checkpoint(args.checkpoint or Path("models/work/checkpoints") / f"{args.part}_2bar.pt")
    heldout = heldout_windows(args.part, args.data, bars=model.size.bars)
    print(json.dumps({"step": state["step"], "heldout_windows": len(heldout), **token_accuracy(model, heldout)}))


if __name__ == "__main__":
    main()
