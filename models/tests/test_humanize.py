"""The committed humanize models, run with onnxruntime as the plugin runs
them, on every held-out window of the raw data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from conftest import REPOSITORY
from latent_trio_models import evaluate_humanize, export_humanize
from latent_trio_models.humanize import MAX_OFFSET, HumanizeSize, Humanizer, drum_hits

PARTS = ("drums", "bass", "melody")


def session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module", params=PARTS)
def humanize_folder(request) -> Path:
    folder = REPOSITORY / "models" / f"{request.param}_humanize"
    assert (folder / "manifest.json").is_file(), f"{folder} has no committed model"
    return folder


def test_the_committed_graph_reproduces_its_manifest_errors_and_beats_the_baselines(humanize_folder: Path, data_dir: Path):
    manifest = json.loads((humanize_folder / "manifest.json").read_text())
    part = manifest["part"]
    heldout = evaluate_humanize.heldout_performances(part, data_dir)
    assert len(heldout.tokens) == manifest["evaluation"]["heldout_windows"]
    graph = session(humanize_folder / manifest["graphs"]["humanize"]["file"])
    if part == "drums":
        outputs = graph.run(None, {"hits": drum_hits(torch.as_tensor(heldout.tokens)).numpy()})
        velocities, offsets = outputs
        assert np.abs(offsets).max() <= MAX_OFFSET
    else:
        velocities, offsets = graph.run(None, {"tokens": heldout.tokens})[0], None
    assert velocities.min() >= 1 and velocities.max() <= 127
    measured = evaluate_humanize.errors(heldout, velocities, offsets)
    reported = manifest["evaluation"]["model"]
    for name, value in measured.items():
        assert abs(value - reported[name]) < 0.01 * max(1.0, reported[name]), f"{name}: {value} against {reported[name]}"
    # Better than the plugin without humanize, and than random jitter.
    grid_offsets = None if offsets is None else np.zeros_like(offsets)
    grid = evaluate_humanize.errors(heldout, evaluate_humanize.grid_velocities(heldout), grid_offsets)
    jitter = manifest["evaluation"]["baselines"]["jitter"]
    for name, value in measured.items():
        assert value < grid[name], f"{name}: {value} against the grid's {grid[name]}"
        assert value < jitter[name], f"{name}: {value} against jitter's {jitter[name]}"


@pytest.mark.parametrize("part", PARTS)
def test_the_exported_graph_gives_the_pytorch_performance(tmp_path: Path, part: str):
    torch.manual_seed(0)
    model = Humanizer(HumanizeSize(part=part, hidden=16, layers=1))
    spec = export_humanize.export_graph(model, tmp_path)
    tokens = np.random.default_rng(0).integers(0, 90 if part != "drums" else 512, (3, 32))
    assert export_humanize.parity(model, tmp_path, spec, tokens) < export_humanize.PARITY_TOLERANCE


def test_grid_and_jitter_baselines_are_what_the_plugin_and_chance_would_play():
    tokens = np.zeros((1, 32), dtype=np.int64)
    tokens[0, ::4] = 1  # kick on every beat
    velocities = np.zeros((1, 32, 9), dtype=np.uint8)
    velocities[0, ::4, 0] = 110
    offsets = np.zeros((1, 32, 9), dtype=np.float32)
    offsets[0, ::4, 0] = -0.1
    performances = evaluate_humanize.Performances(tokens, velocities, offsets, np.array([120.0]))
    grid = evaluate_humanize.errors(performances, evaluate_humanize.grid_velocities(performances), np.zeros_like(offsets))
    assert grid["velocity_mae"] == 0.0, "on the beat the plugin plays 110"
    assert grid["timing_mae_16ths"] == pytest.approx(0.1)
    assert grid["timing_mae_ms"] == pytest.approx(12.5), "a tenth of a 16th at 120 BPM"
