"""Exports a trained humanize model (humanize.py) for the plugin:
`models/<part>_humanize/` with `humanize.onnx` and `manifest.json` (the
contract in models/README.md), and its weights `models/weights/<part>_humanize.pt`.
The held-out evaluation (evaluate_humanize.py) goes into the manifest.

Run: python -m latent_trio_models.export_humanize --part drums
     (from models/work/checkpoints/drums_humanize.pt, or --checkpoint)
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from . import evaluate_humanize, vocab
from .humanize import MAX_OFFSET, Humanizer, HumanizeSize, drum_hits

#: The manifest format the plugin reads (engine/humanize.rs).
FORMAT_VERSION = 1
OPSET = 17
#: Largest difference between the ONNX and PyTorch outputs allowed (velocity
#: in MIDI units, offset in 16ths).
PARITY_TOLERANCE = 1e-3


def tensor(name: str, dtype: str, shape: list) -> dict:
    return {"name": name, "dtype": dtype, "shape": shape}


def signature(size: HumanizeSize) -> dict:
    classes = len(vocab.DRUM_CLASSES)
    if size.part == "drums":
        return {
            "file": "humanize.onnx",
            "inputs": [tensor("hits", "float32", ["batch", size.steps, classes])],
            "outputs": [
                tensor("velocity", "float32", ["batch", size.steps, classes]),
                tensor("offset", "float32", ["batch", size.steps, classes]),
            ],
        }
    return {
        "file": "humanize.onnx",
        "inputs": [tensor("tokens", "int64", ["batch", size.steps])],
        "outputs": [tensor("velocity", "float32", ["batch", size.steps])],
    }


class MelodicGraph(torch.nn.Module):
    """The melodic model without its unused second output."""

    def __init__(self, model: Humanizer):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens)[0]


def export_graph(model: Humanizer, out: Path) -> dict:
    model.eval()
    spec = signature(model.size)
    example = torch.zeros(2, model.size.steps, len(vocab.DRUM_CLASSES)) if model.drums else torch.ones(2, model.size.steps, dtype=torch.long)
    module = model if model.drums else MelodicGraph(model)
    names = [t["name"] for t in spec["inputs"] + spec["outputs"]]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "Exporting a model to ONNX with a batch_size other than 1", UserWarning)
        torch.onnx.export(
            module,
            (example,),
            str(out / spec["file"]),
            input_names=[t["name"] for t in spec["inputs"]],
            output_names=[t["name"] for t in spec["outputs"]],
            dynamic_axes={name: {0: "batch"} for name in names},
            opset_version=OPSET,
            dynamo=False,
        )
    return spec


def parity(model: Humanizer, out: Path, spec: dict, tokens: np.ndarray) -> float:
    """Largest difference between ONNX Runtime's outputs and PyTorch's."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(out / spec["file"]), options, providers=["CPUExecutionProvider"])
    batch = torch.as_tensor(tokens)
    pattern = drum_hits(batch) if model.drums else batch
    with torch.no_grad():
        expected = [t.numpy() for t in model(pattern) if t is not None]
    found = session.run(None, {spec["inputs"][0]["name"]: pattern.numpy()})
    return max(float(np.abs(a - b).max()) for a, b in zip(expected, found))


def export(part: str, checkpoint: Path, models: Path, data: Path, raw: Path) -> dict:
    saved = torch.load(checkpoint, weights_only=True)
    state = saved["state"]
    size = HumanizeSize(**state["size"])
    model = Humanizer(size)
    # The weights that scored best on the validation split (see train_humanize).
    best = saved.get("best")
    model.load_state_dict(best["model"] if best else saved["model"])
    model.eval()
    if best:
        state = {**state, "best_validation": {"step": best["step"], **best["validation"]}}
    name = f"{part}_humanize"
    out = models / name
    out.mkdir(parents=True, exist_ok=True)
    weights = models / "weights" / f"{name}.pt"
    weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "state": state}, weights)
    spec = export_graph(model, out)
    test = evaluate_humanize.heldout_performances(part, raw)
    # Batch 1 is what the plugin runs; 16 checks the dynamic batch axis.
    difference = max(parity(model, out, spec, test.tokens[:1]), parity(model, out, spec, test.tokens[:16]))
    if difference >= PARITY_TOLERANCE:
        raise ValueError(f"ONNX and PyTorch outputs differ by {difference}")
    evaluation = evaluate_humanize.evaluate(model, data, part, raw)
    evaluation["onnx_parity_max_difference"] = difference
    last = state["history"][-1] if state["history"] else {}
    manifest = {
        "format_version": FORMAT_VERSION,
        "family": "humanize",
        "name": name,
        "part": part,
        "steps": size.steps,
        "steps_per_bar": vocab.STEPS_PER_BAR,
        "max_offset_16ths": MAX_OFFSET if part == "drums" else 0.0,
        "graphs": {"humanize": spec},
        "training": {
            "data": "Groove MIDI Dataset, official split" if part == "drums" else "POP909, split by song",
            "train_windows": state.get("train_windows"),
            "steps": state["step"],
            "wall_time_s": round(state["wall_time_s"]),
            "hardware": state.get("hardware"),
            "size": size.as_dict(),
            "hyperparameters": state.get("config"),
            "final_log": last,
            "shipped_weights": state.get("best_validation", {"step": state["step"]}),
        },
        "evaluation": evaluation,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["drums", "bass", "melody"], required=True)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=Path("models/work/data"), help="converted windows")
    parser.add_argument("--raw", type=Path, default=Path("../shared/data"), help="folder with groove/ and pop909/")
    args = parser.parse_args()
    checkpoint = args.checkpoint or Path("models/work/checkpoints") / f"{args.part}_humanize.pt"
    manifest = export(args.part, checkpoint, args.models, args.data, args.raw)
    print(json.dumps(manifest["evaluation"], indent=1))


if __name__ == "__main__":
    main()
