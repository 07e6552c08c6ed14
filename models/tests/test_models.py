"""The committed models, checked with onnxruntime the way the plugin loads
them, and the exporter checked against PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from latent_trio_models import evaluate, export
from latent_trio_models.model import ModelSize, MusicVAE

PARTS = ("drums", "bass", "melody")
DTYPES = {"tensor(int64)": "int64", "tensor(float)": "float32"}


def session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options)


def signature(outlets) -> list[dict]:
    return [
        {"name": o.name, "dtype": DTYPES.get(o.type, o.type), "shape": [d if isinstance(d, int) else "batch" for d in o.shape]}
        for o in outlets
    ]


@pytest.fixture(scope="module", params=PARTS)
def model_folder(request, repository: Path) -> Path:
    folder = repository / "models" / f"{request.param}_2bar"
    assert (folder / "manifest.json").is_file(), f"{folder} has no committed model"
    return folder


def test_every_graph_matches_its_manifest_and_fits_the_size_budget(model_folder: Path):
    manifest = json.loads((model_folder / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["name"] == model_folder.name
    for name in ("encoder", "decoder_init", "decoder_step"):
        spec = manifest["graphs"][name]
        path = model_folder / spec["file"]
        assert path.stat().st_size <= 15_000_000, f"{path} is over 15 MB"
        graph = session(path)
        assert signature(graph.get_inputs()) == spec["inputs"], name
        assert signature(graph.get_outputs()) == spec["outputs"], name
    axes = json.loads((model_folder / manifest["latent_axes"]).read_text())
    assert len(axes["principal"]) >= 8
    for axis in axes["principal"]:
        assert abs(np.linalg.norm(axis["direction"]) - 1) < 1e-3 and axis["std"] > 0


def test_the_manifest_teacher_forced_accuracy_is_reproduced_from_held_out_data(model_folder: Path, data_dir: Path):
    manifest = json.loads((model_folder / "manifest.json").read_text())
    graphs = manifest["graphs"]
    heldout = evaluate.heldout_windows(manifest["part"], data_dir)
    assert len(heldout) == manifest["evaluation"]["heldout_windows"]
    (mu, _) = session(model_folder / graphs["encoder"]["file"]).run(None, {"tokens": heldout})
    logits = export.onnx_teacher_forced_logits(model_folder, graphs, heldout, mu, manifest["start_token"])
    accuracy = float((logits.argmax(-1) == heldout).mean())
    expected = manifest["evaluation"]["teacher_forced_accuracy"]
    assert abs(accuracy - expected) < 0.01, f"measured {accuracy:.4f}, manifest says {expected}"


def test_the_exported_step_decoder_gives_the_pytorch_logits(tmp_path: Path):
    torch.manual_seed(7)
    model = MusicVAE(ModelSize(vocab=90, latent=16, embedding=8, encoder_hidden=24, decoder_hidden=32))
    graphs = export.export_graphs(model, tmp_path)
    assert export.parity(model, tmp_path, graphs) < export.PARITY_TOLERANCE
    # And the parity check itself notices a wrong graph.
    other = MusicVAE(model.size)
    assert export.parity(other, tmp_path, graphs) > export.PARITY_TOLERANCE
