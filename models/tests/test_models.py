"""The committed models, checked with onnxruntime the way the plugin loads
them, and the exporter checked against PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from conftest import REPOSITORY
from latent_trio_models import attributes, evaluate, export, harmony, step_graph
from latent_trio_models.model import HierarchicalVAE, ModelSize, MusicVAE, kl_divergence

PARTS = ("drums", "bass", "melody")
# Every model the plugin ships (the melody's Transformer VAE too), plus any
# other committed model folder.
SHIPPED = {f"{part}_{bars}bar" for part in PARTS for bars in (2, 16)} | {"melody_transformer"}
FOLDERS = sorted(SHIPPED | {p.name for pattern in ("*_2bar", "*_16bar") for p in (REPOSITORY / "models").glob(pattern)})
DTYPES = {"tensor(int64)": "int64", "tensor(float)": "float32"}


def session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def signature(outlets) -> list[dict]:
    return [
        {"name": o.name, "dtype": DTYPES.get(o.type, o.type), "shape": [d if isinstance(d, int) else "batch" for d in o.shape]}
        for o in outlets
    ]


@pytest.fixture(scope="module", params=FOLDERS)
def model_folder(request) -> Path:
    folder = REPOSITORY / "models" / request.param
    assert (folder / "manifest.json").is_file(), f"{folder} has no committed model"
    return folder


def test_every_graph_matches_its_manifest_and_fits_the_size_budget(model_folder: Path):
    manifest = json.loads((model_folder / "manifest.json").read_text())
    hierarchical = manifest["hierarchical"]
    # 5: a Transformer VAE (z = its bar latents), 4: hierarchical, 3: flat.
    expected_format = 5 if manifest.get("bar_latents") else 4 if hierarchical else 3
    assert manifest["format_version"] == expected_format and manifest["name"] == model_folder.name
    assert manifest["bars"] == (16 if hierarchical else 2)
    assert ("conductor" in manifest["graphs"]) == hierarchical
    # Bass and melody follow chords; drums take none.
    assert (manifest["chords"] is not None) == (manifest["part"] != "drums")
    part = manifest["part"]
    size = manifest["vocabulary"]["size"]
    assert manifest["start_token"] == size, "the start token is the row after the vocabulary"
    assert size == (512 if part == "drums" else 90)
    for name, spec in manifest["graphs"].items():
        path = model_folder / spec["file"]
        assert path.stat().st_size <= 15_000_000, f"{path} is over 15 MB"
        graph = session(path)
        assert signature(graph.get_inputs()) == spec["inputs"], name
        assert signature(graph.get_outputs()) == spec["outputs"], name
    assert manifest["graphs"]["decoder_step"]["outputs"][0]["shape"] == ["batch", size]
    assert manifest["parity_max_abs_diff"] < 1e-4


def test_the_latent_axes_are_unit_directions_and_one_vector_per_attribute(model_folder: Path):
    manifest = json.loads((model_folder / "manifest.json").read_text())
    latent = manifest["latent_size"]
    axes = json.loads((model_folder / manifest["latent_axes"]).read_text())
    assert len(axes["principal"]) == 8
    directions = np.array([axis["direction"] for axis in axes["principal"]])
    assert directions.shape == (8, latent)
    assert np.allclose(directions @ directions.T, np.eye(8), atol=1e-3), "principal directions are orthonormal"
    stds = [axis["std"] for axis in axes["principal"]]
    assert all(s > 0 for s in stds) and stds == sorted(stds, reverse=True), "pc1 varies most"
    assert [a["name"] for a in axes["attributes"]] == attributes.attribute_names(manifest["part"])
    for attribute in axes["attributes"]:
        assert len(attribute["vector"]) == latent and np.linalg.norm(attribute["vector"]) > 0
        assert attribute["description"]


def test_every_knob_the_plugin_uses_raises_its_attribute_on_held_out_data(model_folder: Path):
    manifest = json.loads((model_folder / "manifest.json").read_text())
    axes = json.loads((model_folder / manifest["latent_axes"]).read_text())
    checked = manifest["evaluation"]["attribute_check"]["results"]
    for attribute in axes["attributes"]:
        calibration = attribute["calibration"]
        assert calibration["data_iqr"] > 0 and calibration["scale_of_quartile_difference"] > 0
        # The plugin uses a knob whose attribute rose steadily for >= 90 % of
        # the calibration phrases; on held-out phrases it must raise it too.
        if attribute["monotonic_share"] >= 0.9:
            low, high = checked[attribute["name"]]["-2"], checked[attribute["name"]]["+2"]
            assert high > low, f"{attribute['name']}: {low} at -2, {high} at +2"


def test_the_manifest_teacher_forced_accuracy_is_reproduced_from_held_out_data(model_folder: Path, data_dir: Path):
    manifest = json.loads((model_folder / "manifest.json").read_text())
    graphs = manifest["graphs"]
    heldout = evaluate.heldout_windows(manifest["part"], data_dir, bars=manifest["bars"])
    assert len(heldout) == manifest["evaluation"]["heldout_windows"]
    tokens = heldout.tokens
    # numpy + onnxruntime only, as the plugin runs it, on the windows' own chords.
    encoder_inputs = {"tokens": tokens}
    chords = None
    if manifest["chords"]:
        chords = harmony.chroma(heldout.chords)
        encoder_inputs["chords"] = chords
    mu, _ = session(model_folder / graphs["encoder"]["file"]).run(None, encoder_inputs)
    init = session(model_folder / graphs["decoder_init"]["file"])
    step = session(model_folder / graphs["decoder_step"]["file"])
    if manifest["hierarchical"]:
        # One embedding per bar; each bar starts from its own and the start token.
        (embeddings,) = session(model_folder / graphs["conductor"]["file"]).run(None, {"z": mu})
        starts = [("bar_embedding", embeddings[:, bar]) for bar in range(manifest["bars"])]
    else:
        starts = [("z", mu)]
    length = tokens.shape[1] // len(starts)
    correct = 0
    for segment, (name, latent) in enumerate(starts):
        h, c, conditioning = init.run(None, {name: latent})
        previous = np.full(len(tokens), manifest["start_token"], dtype=np.int64)
        for index in range(segment * length, (segment + 1) * length):
            inputs = {"token": previous, "conditioning": conditioning, "h": h, "c": c}
            if chords is not None:
                inputs["chord"] = chords[:, index]
            logits, h, c = step.run(None, inputs)
            correct += int((logits.argmax(-1) == tokens[:, index]).sum())
            previous = tokens[:, index]
    accuracy = correct / tokens.size
    shipped = manifest["evaluation"]["shipped_graphs"]["teacher_forced_accuracy"]
    assert abs(accuracy - shipped) < 0.01, f"measured {accuracy:.4f}, manifest says {shipped}"
    # The 8-bit step graph plays as well as the float32 model it came from.
    trained = manifest["evaluation"]["teacher_forced_accuracy"]
    assert accuracy > trained - export.QUANTIZED_ACCURACY_LOSS, f"8-bit {accuracy:.4f} against float32 {trained}"


@pytest.mark.parametrize("chord_size", [0, harmony.CHROMA_SIZE])
def test_the_exported_graphs_give_the_pytorch_encoding_logits_and_latent_gradient(tmp_path: Path, chord_size: int):
    torch.manual_seed(7)
    size = ModelSize(vocab=90, latent=16, embedding=8, encoder_hidden=24, decoder_hidden=32, chord_size=chord_size)
    model = MusicVAE(size)
    graphs = export.export_graphs(model, tmp_path, kl_weight=0.2)
    assert graphs["latent_gradient"]["inputs"][-1] == {"name": "sigma", "dtype": "float32", "shape": [1, 16]}
    assert export.parity(model, tmp_path, graphs, kl_weight=0.2) < export.PARITY_TOLERANCE
    # And the parity check itself notices a wrong graph, or a gradient of another loss.
    other = MusicVAE(model.size)
    assert export.parity(other, tmp_path, graphs, kl_weight=0.2) > export.PARITY_TOLERANCE
    del graphs["encoder"], graphs["decoder_init"]
    assert export.parity(model, tmp_path, {**export.export_graphs(model, tmp_path), **graphs}, kl_weight=1.0) > export.PARITY_TOLERANCE


def test_a_refined_latent_plays_held_out_drums_back_better_than_the_encoder_mean(data_dir: Path):
    saved = torch.load(REPOSITORY / "models" / "weights" / "drums_2bar.pt", weights_only=True)
    model = MusicVAE(ModelSize(**saved["state"]["size"]))
    model.load_state_dict(saved["model"])
    model.eval()
    heldout = evaluate.heldout_windows("drums", data_dir)
    # Every 8th window: all the test split's drummers.
    windows = torch.as_tensor(heldout.tokens[::8])
    kl_weight = saved["state"]["config"]["max_beta"]
    with torch.no_grad():
        mu, sigma = model.encode(windows)
    z, _ = model.refine(windows, None, kl_weight)

    def played_back(latent: torch.Tensor) -> float:
        return float((model.sample(latent, temperature=0.0) == windows).float().mean())

    assert played_back(z) > played_back(mu) + 0.05, (played_back(z), played_back(mu))
    # It explains them better for the loss the encoder was trained on, and
    # with about as much information in the latent as the encoder gives.
    with torch.no_grad():
        loss = lambda latent: float(model.negative_elbo(windows, latent, sigma, None, kl_weight).mean())  # noqa: E731
        assert loss(z) < loss(mu) - 5.0, (loss(z), loss(mu))
        assert float(kl_divergence(z, sigma).mean()) < 1.25 * float(kl_divergence(mu, sigma).mean())


@pytest.mark.parametrize("chord_size", [0, harmony.CHROMA_SIZE])
def test_the_exported_hierarchical_graphs_give_the_pytorch_encoding_embeddings_and_logits(tmp_path: Path, chord_size: int):
    torch.manual_seed(11)
    size = ModelSize(
        vocab=90, steps=64, bars=4, latent=16, embedding=8, encoder_hidden=24, decoder_hidden=32,
        chord_size=chord_size, bar_sequence_hidden=20, conductor_hidden=24,
    )
    model = HierarchicalVAE(size)
    graphs = export.export_graphs(model, tmp_path)
    assert graphs["conductor"]["outputs"][0]["shape"] == ["batch", 4, 16]
    assert export.parity(model, tmp_path, graphs) < export.PARITY_TOLERANCE
    other = HierarchicalVAE(size)
    assert export.parity(other, tmp_path, graphs) > export.PARITY_TOLERANCE


def test_a_chord_conditioned_step_graph_hears_the_chord(tmp_path: Path):
    torch.manual_seed(5)
    model = MusicVAE(ModelSize(vocab=90, latent=16, embedding=8, encoder_hidden=24, decoder_hidden=32, chord_size=harmony.CHROMA_SIZE))
    graphs = export.export_graphs(model, tmp_path)
    tokens = np.zeros((1, model.size.steps), dtype=np.int64)
    z = np.zeros((1, model.size.latent), dtype=np.float32)
    c_major = harmony.chroma(np.full((1, model.size.steps), harmony.chord_mask("C:maj")))
    f_sharp = harmony.chroma(np.full((1, model.size.steps), harmony.chord_mask("F#:maj")))
    under_c = export.onnx_teacher_forced_logits(tmp_path, graphs, tokens, z, model.start_token, c_major)
    under_f_sharp = export.onnx_teacher_forced_logits(tmp_path, graphs, tokens, z, model.start_token, f_sharp)
    assert np.abs(under_c - under_f_sharp).max() > 1e-3, "the chord input reaches the logits"


def test_the_8_bit_step_graph_predicts_the_tokens_of_the_float32_one(tmp_path: Path):
    torch.manual_seed(3)
    model = MusicVAE(ModelSize(vocab=90, latent=32, embedding=16, encoder_hidden=64, decoder_hidden=64))
    graphs = export.export_graphs(model, tmp_path)
    float32_size = (tmp_path / "decoder_step.onnx").stat().st_size
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 90, (64, model.size.steps), generator=generator).numpy()
    z = torch.randn(64, model.size.latent, generator=generator).numpy()
    exact = export.onnx_teacher_forced_logits(tmp_path, graphs, tokens, z, model.start_token)
    step_graph.quantize_file(tmp_path / "decoder_step.onnx")
    assert (tmp_path / "decoder_step.onnx").stat().st_size < float32_size / 2, "weights stored in 8 bits"
    quantized = export.onnx_teacher_forced_logits(tmp_path, graphs, tokens, z, model.start_token)
    assert np.abs(quantized - exact).max() < 0.05, "8-bit logits stay within 0.05 of float32"
    assert (quantized.argmax(-1) == exact.argmax(-1)).mean() > 0.98


@pytest.mark.parametrize("part", PARTS)
def test_refined_latents_through_onnxruntime_play_back_as_pytorch_refines_them(part: str, data_dir: Path):
    folder = REPOSITORY / "models" / f"{part}_2bar"
    manifest = json.loads((folder / "manifest.json").read_text())
    graphs, refinement = manifest["graphs"], manifest["refinement"]
    heldout = evaluate.heldout_windows(part, data_dir)
    # Every 32nd window: every drummer, or songs from all through the test set.
    tokens = heldout.tokens[::32]
    chords = harmony.chroma(heldout.chords[::32]) if manifest["chords"] else None
    # numpy + onnxruntime, as the plugin refines a clip: Adam down the latent gradient.
    mu, sigma = export.onnx_encode(folder, graphs, tokens, chords)
    gradient = session(folder / graphs["latent_gradient"]["file"])
    z, mean, variance = mu.copy(), np.zeros_like(mu), np.zeros_like(mu)
    for step in range(1, refinement["steps"] + 1):
        found = np.concatenate(
            [
                gradient.run(
                    None,
                    {"tokens": tokens[row : row + 1], "z": z[row : row + 1], "sigma": sigma[row : row + 1]}
                    | ({} if chords is None else {"chords": chords[row : row + 1]}),
                )[0]
                for row in range(len(tokens))
            ]
        )
        mean = 0.9 * mean + 0.1 * found
        variance = 0.999 * variance + 0.001 * found**2
        denominator = np.sqrt(variance) / np.sqrt(1 - 0.999**step) + 1e-8
        z = (z - refinement["learning_rate"] / (1 - 0.9**step) * mean / denominator).astype(np.float32)
    logits = export.onnx_teacher_forced_logits(folder, graphs, tokens, z, manifest["start_token"], chords)
    through_onnx = float((logits.argmax(-1) == tokens).mean())
    saved = torch.load(REPOSITORY / "models" / "weights" / f"{part}_2bar.pt", weights_only=True)
    model = MusicVAE(ModelSize(**saved["state"]["size"]))
    model.load_state_dict(saved["model"])
    model.eval()
    x = torch.as_tensor(tokens)
    chord_inputs = None if chords is None else torch.as_tensor(chords)
    refined, _ = model.refine(x, chord_inputs, refinement["kl_weight"], refinement["steps"], refinement["learning_rate"])
    with torch.no_grad():
        in_pytorch = float((model.teacher_forced_logits(x, refined, chord_inputs).argmax(-1) == x).float().mean())
    assert abs(through_onnx - in_pytorch) < 0.01, f"onnxruntime {through_onnx:.4f}, PyTorch {in_pytorch:.4f}"
    # A 32nd of the windows lands near the whole split's figure in the manifest.
    whole = manifest["evaluation"]["refined_latent"]["teacher_forced_accuracy"]
    assert abs(through_onnx - whole) < 0.03, f"{through_onnx:.4f} on every 32nd window, {whole} on all"
