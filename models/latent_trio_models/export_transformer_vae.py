"""Exports the melody Transformer VAE (transformer_vae.py) for the plugin:
the hierarchical model's graph contract with z the 16 bar latents one after
another (format 5, models/README.md "Transformer VAE"), its latent axes, and
its evaluation beside the 2-bar and 16-bar MusicVAE (evaluate_transformer_vae.py).

Run: python -m latent_trio_models.export_transformer_vae
     (reads models/work/checkpoints/melody_transformer.pt, or --checkpoint;
     writes models/melody_transformer/ and models/weights/melody_transformer.pt)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from . import evaluate, step_graph, vocab
from .data import load_windows
from .evaluate_transformer_vae import heldout_phrases, score
from .export import (
    DATA_SOURCES,
    PARITY_TOLERANCE,
    SPLIT_RULES,
    export_graphs,
    keep_weights,
    latent_axes,
    load_checkpoint,
    parity,
    shipped_graph_score,
    vocabulary,
    weights_path,
)
from .train import checkpoint_path
from .train_transformer_vae import NAME, load

FORMAT_VERSION = 5


def export(checkpoint: Path, out: Path, data: Path, converted: Path) -> dict:
    model, state = load(checkpoint)
    keep_weights(model, state, checkpoint, weights_path(out.parent, out.name))
    graphs = export_graphs(model, out)
    # Batch 1 is what the plugin runs; 8 checks the dynamic batch axis.
    difference = max(parity(model, out, graphs, examples=1), parity(model, out, graphs, examples=8))
    if difference >= PARITY_TOLERANCE:
        raise ValueError(f"ONNX and PyTorch differ by {difference}")
    step_graph.quantize_file(out / graphs["decoder_step"]["file"])
    windows = load_windows(converted, "melody")
    train = evaluate.Windows(windows["train_16bar"].astype(np.int64), windows["train_16bar_chord"], windows["train_16bar_key"])
    axes = latent_axes(model, train, "melody")
    (out / "latent_axes.json").write_text(json.dumps(axes))
    phrases = heldout_phrases(data)
    baselines = {name: load_checkpoint(weights_path(out.parent, name))[0] for name in ("melody_2bar", "melody_16bar")}
    evaluation = {"heldout_windows": len(phrases), **score(model, baselines, phrases)}
    reference = evaluation["reconstruction"][NAME]
    # Where every model's manifest has them.
    evaluation.update({name: value for name, value in reference.items() if name != "per_bar"})
    evaluation["shipped_graphs"] = shipped_graph_score(out, graphs, phrases, model, reference)
    vectors = {a["name"]: np.asarray(a["vector"], dtype=np.float32) for a in axes["attributes"]}
    evaluation["attribute_check"] = {
        "description": "as for the 2-bar models, over whole 16-bar windows",
        "examples": min(len(phrases), evaluate.ATTRIBUTE_EXAMPLES),
        "results": evaluate.attribute_check(model, phrases, "melody", vectors),
    }
    size = model.size
    history = state.get("history", [])
    manifest = {
        # 5: a Transformer VAE, z = its bar latents one after another.
        "format_version": FORMAT_VERSION,
        "name": out.name,
        "part": "melody",
        "vocabulary": vocabulary("melody"),
        "start_token": model.start_token,
        "steps_per_bar": vocab.STEPS_PER_BAR,
        "bars": size.bars,
        "latent_size": size.z_size,
        "hierarchical": True,
        "bar_latents": {"size": size.bar_latent, "bar_embedding_size": size.latent},
        "chords": {
            "size": size.chord_size,
            "encoding": "12 pitch classes (C first; 1 where the chord has the pitch class, its bass note included), then 1 for no chord",
        },
        "decoder": {"layers": size.decoder_layers, "hidden": size.decoder_hidden},
        "graphs": graphs,
        "latent_axes": "latent_axes.json",
        "training": {
            "data": DATA_SOURCES["melody"],
            "split": SPLIT_RULES["melody"],
            "windows": "16-bar windows on bar lines, hop 4 bars, at least 4 onsets, each kept once; "
            "each training window transposed by a random -5..+6 semitones that keeps it in range",
            "train_windows": state.get("train_windows"),
            "warm_start": state.get("warm_start"),
            "steps": state["step"],
            "wall_time_s": round(state["wall_time_s"]),
            "hardware": state.get("hardware"),
            "size": size.as_dict(),
            "hyperparameters": state.get("config"),
            "final_log": history[-1] if history else None,
            "last_validation": next((r for r in reversed(history) if "validation_tf_accuracy" in r), None),
        },
        "evaluation": evaluation,
        "parity_max_abs_diff": difference,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=checkpoint_path(NAME))
    parser.add_argument("--out", type=Path, default=Path("models") / NAME)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--converted", type=Path, default=Path("models/work/data"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    manifest = export(args.checkpoint, args.out, args.data, args.converted)
    evaluation = manifest["evaluation"]
    print(json.dumps({"parity": manifest["parity_max_abs_diff"], **{k: v for k, v in evaluation.items() if k != "reconstruction"}}, indent=1))


if __name__ == "__main__":
    main()
