"""Exports the song prior (see `diffusion.py`) for the plugin: the denoiser
as ONNX and a manifest with what the plugin's sampler needs (the schedule,
the sampler's step count, the latent scaling, which 2-bar models' latents
the slots hold, whether it hears the slots' chords), its training and its evaluation (`evaluate_songs.py`).

Run: python -m latent_trio_models.export_song_prior --group melody
     (writes models/song_melody/; about 2 minutes with the evaluation)
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from . import song_latents
from .diffusion import BETA_END, BETA_START, NOISE_SCALE, SCHEDULE_STEPS, Denoiser
from .evaluate_songs import load_prior, score_songs
from .export import OPSET, pin_fixed_dimensions

FORMAT_VERSION = 2
SAMPLER_STEPS = 50
# Tries of each infilling step (RePaint's resampling), chosen per prior on the
# validation songs' infilling scores (models/README.md "Song prior"): with
# resampling the written slots agree better with the kept ones.
INFILL_RESAMPLE = {"drums": 3, "melody": 3, "bass": 10}
HARMONY_ENCODING = (
    "per slot: the share of its 32 steps in which each pitch class (C first) sounds in the chord, "
    "then the share of steps with no chord"
)


def signature(latent: int, slots: int, harmony: int) -> dict:
    """The denoiser graph's contract (models/README.md "Song prior"); a
    prior that hears the chords also takes every slot's `harmony`."""
    inputs = [
        {"name": "noisy", "dtype": "float32", "shape": ["batch", slots, latent]},
        {"name": "noise_level", "dtype": "float32", "shape": ["batch"]},
        {"name": "known", "dtype": "float32", "shape": ["batch", slots, latent]},
        {"name": "keep", "dtype": "float32", "shape": ["batch", slots]},
    ]
    if harmony:
        inputs.append({"name": "harmony", "dtype": "float32", "shape": ["batch", slots, harmony]})
    return {
        "file": "denoiser.onnx",
        "inputs": inputs,
        "outputs": [{"name": "noise", "dtype": "float32", "shape": ["batch", slots, latent]}],
    }


class DenoiserGraph(torch.nn.Module):
    """The denoiser with every slot real (no padding input), giving the noise
    its clean latents imply (the plugin's DDIM sampler takes the noise);
    `known` holds the kept slots' scaled latents where `keep` is 1, and
    `harmony` the slots' chords for a prior that hears them."""

    def __init__(self, model: Denoiser):
        super().__init__()
        self.model = model

    def forward(
        self,
        noisy: torch.Tensor,
        noise_level: torch.Tensor,
        known: torch.Tensor,
        keep: torch.Tensor,
        harmony: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.model.noise(noisy, noise_level, known, keep, harmony)


def write_graph(model: Denoiser, out: Path) -> dict:
    spec = signature(model.size.latent, model.size.slots, model.size.harmony)
    out.mkdir(parents=True, exist_ok=True)
    noisy = torch.zeros(2, model.size.slots, model.size.latent)
    level = torch.full((2,), 0.5)
    keep = torch.zeros(2, model.size.slots)
    example: tuple = (noisy, level, noisy, keep)
    if model.size.harmony:
        example += (torch.zeros(2, model.size.slots, model.size.harmony),)
    names = [t["name"] for t in spec["inputs"] + spec["outputs"]]
    inputs = len(spec["inputs"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            DenoiserGraph(model),
            example,
            str(out / spec["file"]),
            input_names=names[:inputs],
            output_names=names[inputs:],
            dynamic_axes={name: {0: "batch"} for name in names},
            opset_version=OPSET,
            dynamo=False,
        )
    pin_fixed_dimensions(out / spec["file"], spec)
    return spec


def parity(model: Denoiser, path: Path, examples: int = 4) -> float:
    """Largest difference between the graph's and PyTorch's predicted noise,
    with some slots kept."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    noisy = torch.randn(examples, model.size.slots, model.size.latent, generator=generator)
    level = torch.rand(examples, generator=generator)
    known = torch.rand(examples, model.size.slots, model.size.latent, generator=generator) * 2 - 1
    keep = (torch.rand(examples, model.size.slots, generator=generator) < 0.5).float()
    harmony = torch.rand(examples, model.size.slots, model.size.harmony, generator=generator) if model.size.harmony else None
    with torch.no_grad():
        expected = model.noise(noisy, level, known, keep, harmony).numpy()
    inputs = {"noisy": noisy.numpy(), "noise_level": level.numpy(), "known": known.numpy(), "keep": keep.numpy()}
    if harmony is not None:
        inputs["harmony"] = harmony.numpy()
    found = session.run(["noise"], inputs)[0]
    return float(np.abs(found - expected).max())


def export(group: str, prior_path: Path, out: Path, latents: Path, weights: Path, data_dir: Path) -> dict:
    model, normaliser, state = load_prior(prior_path)
    spec = write_graph(model, out)
    difference = parity(model, out / spec["file"])
    if difference > 1e-3:
        raise SystemExit(f"the exported denoiser differs from PyTorch by {difference}")
    parts = list(song_latents.GROUPS[group])
    history = [r for r in state["history"] if "validation_loss" in r]
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": f"song_{group}",
        "parts": parts,
        "part_models": [f"{part}_2bar" for part in parts],
        "slots": model.size.slots,
        "slot_bars": 2,
        "latent_size": model.size.latent,
        "schedule": {"steps": SCHEDULE_STEPS, "beta_start": BETA_START, "beta_end": BETA_END, "noise_scale": NOISE_SCALE},
        "sampler": {"kind": "ddim", "steps": SAMPLER_STEPS, "infill_resample": INFILL_RESAMPLE[group]},
        "scaling": {"low": normaliser.low.tolist(), "high": normaliser.high.tolist()},
        "harmony": {"size": model.size.harmony, "encoding": HARMONY_ENCODING} if model.size.harmony else None,
        "graphs": {"denoiser": spec},
        "training": {
            "data": "consecutive 2-bar slots of whole songs (see song_latents.py), encoder means of the shipped 2-bar models",
            "train_sequences": state.get("train_sequences"),
            "steps": state["step"],
            "wall_time_s": round(state["wall_time_s"]),
            "hardware": state.get("hardware"),
            "size": state["size"],
            "hyperparameters": state.get("config"),
            "last_validation": history[-1] if history else None,
        },
        "parity_max_abs_diff": difference,
    }
    manifest["evaluation"] = score_songs(
        group, prior_path, latents, weights, data_dir, SAMPLER_STEPS, INFILL_RESAMPLE[group]
    )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", choices=list(song_latents.GROUPS), required=True)
    parser.add_argument("--latents", type=Path, default=Path("models/work/data/song_latents.npz"))
    parser.add_argument("--weights", type=Path, default=Path("models/weights"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    name = f"song_{args.group}"
    manifest = export(args.group, args.weights / f"{name}.pt", Path("models") / name, args.latents, args.weights, args.data)
    print(json.dumps({"parity": manifest["parity_max_abs_diff"], "evaluation": manifest.get("evaluation")}, indent=1))


if __name__ == "__main__":
    main()
