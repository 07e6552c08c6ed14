"""Held-out evaluation of a trained MusicVAE and its latent axes.

Everything here reads held-out windows only: the Groove `test` split and the
POP909 test songs, converted straight from the raw MIDI so that CI can rebuild
exactly the same examples from ../shared/data.

The full report (with the attribute vectors) is written by the exporter into
each manifest; this module's command line gives the token accuracies of a
checkpoint while it trains:

Run: python -m latent_trio_models.evaluate --part drums [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from . import data, vocab
from .attributes import measure
from .model import MusicVAE

HELDOUT_WINDOWS = 512
ATTRIBUTE_EXAMPLES = 128
ATTRIBUTE_STEPS = (-2.0, -1.0, 0.0, 1.0, 2.0)
INTERPOLATION_PAIRS = 32
INTERPOLATION_STEPS = 11


def heldout_windows(part: str, data_dir: Path, limit: int = HELDOUT_WINDOWS) -> np.ndarray:
    """The first `limit` 2-bar test windows of `part`, in song order, each
    distinct window once (as the converter keeps them)."""
    counts = data.Counts()
    if part == "drums":
        songs = data.load_groove_split(data_dir, "test", counts)
    else:
        songs = [song[part] for song in data.load_pop909_split(data_dir, "test", counts)]
    length = data.WINDOW_BARS * vocab.STEPS_PER_BAR
    found = ((song, start, length) for song in songs for start in data.windows(song, part, data.WINDOW_BARS, 1, counts))
    rows = []
    for song, start, _ in data.unique_windows(found, counts, "held-out"):
        rows.append(song.tokens[start : start + length])
        if len(rows) == limit:
            break
    return np.array(rows, dtype=np.int64)


def token_accuracy(model: MusicVAE, tokens: np.ndarray) -> dict[str, float]:
    """MusicVAE's reconstruction accuracy from the encoder mean: teacher-forced
    (argmax given the true previous tokens), and fully sampled from the model's
    own previous tokens at temperature 1.0 and greedily."""
    model.eval()
    x = torch.as_tensor(tokens, dtype=torch.long)
    with torch.no_grad():
        mu, _ = model.encode(x)
        forced = model.teacher_forced_logits(x, mu).argmax(-1)
        generator = torch.Generator().manual_seed(0)
        sampled = model.sample(mu, temperature=1.0, generator=generator)
        greedy = model.sample(mu, temperature=0.0)
    return {
        "teacher_forced_accuracy": round((forced == x).float().mean().item(), 4),
        "sampled_accuracy_t1": round((sampled == x).float().mean().item(), 4),
        "greedy_accuracy": round((greedy == x).float().mean().item(), 4),
    }


# Pitch attributes are undefined for a window with too few notes (measure()
# gives 0 there); averaging those zeros in would read as "lower register".
NOTES_NEEDED = {"register": 1, "interval": 2}


def attribute_check(
    model: MusicVAE, tokens: np.ndarray, part: str, vectors: dict[str, np.ndarray]
) -> dict[str, dict[str, float | None]]:
    """Mean measured attribute after decoding mu + t * vector, for each t
    (register and interval: over the decoded windows that have the notes to
    measure them; None if none has)."""
    x = torch.as_tensor(tokens[:ATTRIBUTE_EXAMPLES], dtype=torch.long)
    with torch.no_grad():
        mu, _ = model.encode(x)
        report = {}
        for name, vector in vectors.items():
            direction = torch.as_tensor(vector, dtype=torch.float32)
            report[name] = {}
            for t in ATTRIBUTE_STEPS:
                decoded = model.sample(mu + t * direction, 0.0).numpy()
                values = measure(name, decoded, part)
                if name in NOTES_NEEDED:
                    values = values[(decoded >= 2).sum(-1) >= NOTES_NEEDED[name]]
                report[name][f"{t:+.0f}"] = round(float(values.mean()), 3) if len(values) else None
    return report


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    cos = torch.clamp((a * b).sum(-1, keepdim=True) / (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True)), -1, 1)
    omega = torch.acos(cos)
    sin = torch.sin(omega).clamp(min=1e-6)
    return torch.sin((1 - t) * omega) / sin * a + torch.sin(t * omega) / sin * b


def interpolation_check(model: MusicVAE, tokens: np.ndarray) -> list[float]:
    """Mean Hamming distance (share of steps that differ) from the start
    sequence along a slerp between the latents of two held-out windows."""
    x = torch.as_tensor(tokens[: 2 * INTERPOLATION_PAIRS], dtype=torch.long)
    with torch.no_grad():
        mu, _ = model.encode(x)
        a, b = mu[0::2], mu[1::2]
        start = model.sample(a, 0.0)
        return [
            round((model.sample(slerp(a, b, t), 0.0) != start).float().mean().item(), 4)
            for t in np.linspace(0, 1, INTERPOLATION_STEPS)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["drums", "bass", "melody"], required=True)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    from .export import load_checkpoint  # the exporter imports this module

    model, state = load_checkpoint(args.checkpoint or Path("models/work/checkpoints") / f"{args.part}_2bar.pt")
    heldout = heldout_windows(args.part, args.data)
    print(json.dumps({"step": state["step"], "heldout_windows": len(heldout), **token_accuracy(model, heldout)}))


if __name__ == "__main__":
    main()
