"""Exports a trained MusicVAE to the step-wise ONNX contract of models/README.md,
with its latent axes, held-out evaluation and manifest.

Run: python -m latent_trio_models.export --part drums
     (reads models/work/checkpoints/drums_2bar.pt, writes models/drums_2bar/
     and its float32 weights models/weights/drums_2bar.pt)
Again from the committed weights, with no training run on this machine:
     python -m latent_trio_models.export --part drums --checkpoint models/weights/drums_2bar.pt
A 16-bar hierarchical model, scored against its flat baseline:
     python -m latent_trio_models.export --part melody --bars 16
     (reads models/work/checkpoints/melody_16bar.pt and melody_16bar_flat.pt)
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from . import attributes, evaluate, harmony, latent_gradient, step_graph, vocab
from . import data as data_module
from .data import load_windows
from .model import REFINE_LEARNING_RATE, REFINE_STEPS, HierarchicalVAE, ModelSize, MusicVAE, build

OPSET = 17
PRINCIPAL_AXES = 8
AXIS_WINDOWS = 8192
# Training windows the attribute knobs are calibrated on.
CALIBRATION_WINDOWS = 256
PARITY_TOLERANCE = 1e-4
# The most held-out token accuracy the 8-bit step graph may lose against float32.
QUANTIZED_ACCURACY_LOSS = 0.01


class EncoderGraph(nn.Module):
    """tokens [batch, steps] (and chords [batch, steps, 13]) -> mu, sigma [batch, latent]."""

    def __init__(self, model: MusicVAE):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, chords: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode(tokens, chords)


class DecoderInitGraph(nn.Module):
    """z [batch, latent] -> h, c [layers, batch, hidden] and the step graph's
    conditioning [batch, 4 * hidden] (see step_graph)."""

    def __init__(self, model: MusicVAE):
        super().__init__()
        self.model = model
        weights, bias = step_graph.conditioning_weights(model)
        self.conditioning = nn.Linear(model.size.latent, weights.shape[1])
        with torch.no_grad():
            self.conditioning.weight.copy_(torch.from_numpy(weights.T))
            self.conditioning.bias.copy_(torch.from_numpy(bias))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, c = self.model.initial_state(z)
        return h, c, self.conditioning(z)


class ConductorGraph(nn.Module):
    """z [batch, latent] -> bar_embeddings [batch, bars, latent]."""

    def __init__(self, model: HierarchicalVAE):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.bar_embeddings(z)


def signatures(size: ModelSize) -> dict[str, dict]:
    """The contract's graph signatures for a model of `size` (shapes: ints, "batch")."""

    def tensor(name: str, dtype: str, shape: list) -> dict:
        return {"name": name, "dtype": dtype, "shape": shape}

    state = [size.decoder_layers, "batch", size.decoder_hidden]
    z = tensor("z", "float32", ["batch", size.z_size])
    # A hierarchical model's bar decoder starts from each bar's embedding instead of z.
    bar_embedding = tensor("bar_embedding", "float32", ["batch", size.latent])
    conditioning = tensor("conditioning", "float32", ["batch", 4 * size.decoder_hidden])
    # A chord-conditioned model reads the chord of every step it encodes and decodes.
    chords = [tensor("chords", "float32", ["batch", size.steps, size.chord_size])] if size.chord_size else []
    chord = [tensor("chord", "float32", ["batch", size.chord_size])] if size.chord_size else []
    conductor = {
        "conductor": {
            "file": "conductor.onnx",
            "inputs": [z],
            "outputs": [tensor("bar_embeddings", "float32", ["batch", size.bars, size.latent])],
        }
    }
    return {
        "encoder": {
            "file": "encoder.onnx",
            "inputs": [tensor("tokens", "int64", ["batch", size.steps]), *chords],
            "outputs": [tensor("mu", "float32", ["batch", size.z_size]), tensor("sigma", "float32", ["batch", size.z_size])],
        },
        **(conductor if size.hierarchical else {}),
        "decoder_init": {
            "file": "decoder_init.onnx",
            "inputs": [bar_embedding if size.hierarchical else z],
            "outputs": [tensor("h", "float32", state), tensor("c", "float32", state), conditioning],
        },
        "decoder_step": {
            "file": "decoder_step.onnx",
            "inputs": [tensor("token", "int64", ["batch"]), *chord, conditioning, tensor("h", "float32", state), tensor("c", "float32", state)],
            "outputs": [
                tensor("logits", "float32", ["batch", size.vocab]),
                tensor("h_out", "float32", state),
                tensor("c_out", "float32", state),
            ],
        },
    }


def export_graphs(model: MusicVAE, out: Path, kl_weight: float | None = None) -> dict[str, dict]:
    """Writes the ONNX files into `out`, all float32 (the step graph is
    quantized only after `parity` has checked it), and given the training
    loss's `kl_weight` a flat model's latent gradient; returns their signatures."""
    model.eval()
    size = model.size
    out.mkdir(parents=True, exist_ok=True)
    graphs = signatures(size)
    batch = 2
    tokens = torch.zeros(batch, size.steps, dtype=torch.long)
    chords = (torch.zeros(batch, size.steps, size.chord_size),) if size.chord_size else ()
    # The decoder starts from z, or a hierarchical model's bar embedding.
    first = torch.zeros(batch, size.latent)
    examples = {
        "encoder": (EncoderGraph(model), (tokens, *chords)),
        "decoder_init": (DecoderInitGraph(model), (first,)),
    }
    if size.hierarchical:
        examples["conductor"] = (ConductorGraph(model), (torch.zeros(batch, size.z_size),))
    for name, (module, args) in examples.items():
        spec = graphs[name]
        names = [t["name"] for t in spec["inputs"] + spec["outputs"]]
        dynamic = {t["name"]: {t["shape"].index("batch"): "batch"} for t in spec["inputs"] + spec["outputs"]}
        with warnings.catch_warnings():
            # The contract asks for the TorchScript exporter (dynamo=False); the
            # LSTM's shape checks trace as constants and the encoder LSTM starts
            # from zeros sized by the batch. `parity` runs batches other than the
            # export one, so none of these warnings applies.
            warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"torch\.nn\.modules\.rnn")
            warnings.filterwarnings("ignore", "Exporting a model to ONNX with a batch_size other than 1", UserWarning)
            torch.onnx.export(
                module,
                args,
                str(out / spec["file"]),
                input_names=[t["name"] for t in spec["inputs"]],
                output_names=[t["name"] for t in spec["outputs"]],
                dynamic_axes={n: dynamic[n] for n in names},
                opset_version=OPSET,
                dynamo=False,
            )
        pin_fixed_dimensions(out / spec["file"], spec)
    step_graph.write(model, out / graphs["decoder_step"]["file"])
    if kl_weight is not None and not size.hierarchical:
        latent_gradient.write(model, out / latent_gradient.FILE, kl_weight)
        graphs["latent_gradient"] = latent_gradient.signature(model)
    return graphs


def pin_fixed_dimensions(path: Path, spec: dict) -> None:
    """Writes the contract's fixed sizes into the graph's declared inputs and
    outputs where the exporter left an axis unnamed (the conductor's bar axis
    comes out of its LSTM without a size), so the plugin's signature check
    sees exactly the contract."""
    graph_model = onnx.load(str(path))
    declared = {value.name: value for value in [*graph_model.graph.input, *graph_model.graph.output]}
    for tensor in spec["inputs"] + spec["outputs"]:
        dims = declared[tensor["name"]].type.tensor_type.shape.dim
        for dim, size in zip(dims, tensor["shape"]):
            if isinstance(size, int) and dim.dim_value != size:
                dim.Clear()
                dim.dim_value = size
    onnx.save(graph_model, str(path))


def _session(path: Path) -> onnxruntime.InferenceSession:
    """A one-thread CPU session, as the plugin's worker runs the graphs."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_decode(
    folder: Path, graphs: dict, z: np.ndarray, start_token: int, steps: int, choose, chords: np.ndarray | None = None
) -> np.ndarray:
    """Decodes step by step through the ONNX graphs, as the plugin does (with
    chord inputs [batch, steps, 13] for a chord-conditioned model; a
    hierarchical model bar by bar, each bar from its conductor embedding and
    the start token); `choose(step, logits)` gives the tokens fed to the next
    step. Returns the logits of every step [batch, steps, vocab]."""
    init = _session(folder / graphs["decoder_init"]["file"])
    step = _session(folder / graphs["decoder_step"]["file"])
    init_input = graphs["decoder_init"]["inputs"][0]["name"]
    if "conductor" in graphs:
        (embeddings,) = _session(folder / graphs["conductor"]["file"]).run(None, {"z": z})
        bars = embeddings.shape[1]
        segments = [(embeddings[:, bar], steps // bars) for bar in range(bars)]
    else:
        segments = [(z, steps)]
    logits = []
    for latent, length in segments:
        h, c, conditioning = init.run(None, {init_input: latent})
        token = np.full(len(z), start_token, dtype=np.int64)
        for _ in range(length):
            index = len(logits)
            inputs = {"token": token, "conditioning": conditioning, "h": h, "c": c}
            if chords is not None:
                inputs["chord"] = chords[:, index]
            out, h, c = step.run(None, inputs)
            logits.append(out)
            token = choose(index, out)
    return np.stack(logits, axis=1)


def onnx_teacher_forced_logits(
    folder: Path, graphs: dict, tokens: np.ndarray, z: np.ndarray, start_token: int, chords: np.ndarray | None = None
) -> np.ndarray:
    """Logits of every step, fed the true previous tokens, through the ONNX graphs."""
    return onnx_decode(folder, graphs, z, start_token, tokens.shape[1], lambda index, _: tokens[:, index].astype(np.int64), chords)


def onnx_encode(folder: Path, graphs: dict, tokens: np.ndarray, chords: np.ndarray | None = None) -> list[np.ndarray]:
    """mu and sigma through the encoder graph."""
    inputs = {"tokens": tokens} if chords is None else {"tokens": tokens, "chords": chords}
    return _session(folder / graphs["encoder"]["file"]).run(None, inputs)


def parity(model: MusicVAE, folder: Path, graphs: dict, kl_weight: float = 1.0, examples: int = 8, seed: int = 0) -> float:
    """Max abs difference between the ONNX graphs and PyTorch over everything the
    plugin reads: encoder mu and sigma, the bar embeddings (hierarchical), the
    initial state, and the logits of all steps of a step-wise decode fed the
    true previous tokens, and (relative to its largest value) the latent
    gradient of the training loss with `kl_weight`, where the model has one.
    `examples` differs from the export batch so that the dynamic batch axis is
    exercised too."""
    generator = torch.Generator().manual_seed(seed)
    size = model.size
    tokens = torch.randint(0, size.vocab, (examples, size.steps), generator=generator)
    z = torch.randn(examples, size.z_size, generator=generator)
    chords = None
    if size.chord_size:
        masks = torch.randint(0, 1 << 12, (examples, size.steps), generator=generator).numpy()
        chords = torch.as_tensor(harmony.chroma(masks))
    init = _session(folder / graphs["decoder_init"]["file"])
    init_input = graphs["decoder_init"]["inputs"][0]["name"]
    with torch.no_grad():
        first = model.bar_embeddings(z)[:, 0] if model.size.hierarchical else z
        expected = [*model.encode(tokens, chords), *model.initial_state(first), model.teacher_forced_logits(tokens, z, chords)]
        found_first = first.numpy()
        if model.size.hierarchical:
            expected.append(model.bar_embeddings(z))
    chord_array = None if chords is None else chords.numpy()
    found = [
        *onnx_encode(folder, graphs, tokens.numpy(), chord_array),
        *init.run(None, {init_input: found_first})[:2],
        onnx_teacher_forced_logits(folder, graphs, tokens.numpy(), z.numpy(), model.start_token, chord_array),
    ]
    if model.size.hierarchical:
        found.append(_session(folder / graphs["conductor"]["file"]).run(None, {"z": z.numpy()})[0])
    if "latent_gradient" in graphs:
        # The gradient the plugin refines a clip's latent with, one window at a time.
        sigma = torch.rand(examples, size.z_size, generator=generator) + 0.1
        gradient = _session(folder / graphs["latent_gradient"]["file"])
        for row in range(examples):
            window = lambda values: values[row : row + 1]  # noqa: E731
            feeds = {"tokens": window(tokens).numpy(), "z": window(z).numpy(), "sigma": window(sigma).numpy()}
            if chords is not None:
                feeds["chords"] = window(chords).numpy()
            with torch.enable_grad():
                latent = window(z).clone().requires_grad_(True)
                loss = model.negative_elbo(window(tokens), latent, window(sigma), None if chords is None else window(chords), kl_weight)
                wanted = torch.autograd.grad(loss.sum(), [latent])[0]
            # Relative to its largest value: it runs to ~100 nats per unit of z.
            scale = max(1.0, float(wanted.abs().max()))
            expected.append(wanted / scale)
            found.append(gradient.run(None, feeds)[0] / scale)
    return max(float(np.abs(f - e.numpy()).max()) for f, e in zip(found, expected))


def shipped_graph_score(folder: Path, graphs: dict, heldout: evaluate.Windows, model: MusicVAE, reference: dict) -> dict:
    """Token accuracy of the graphs as shipped (the quantized step), measured
    the way `evaluate.token_accuracy` measures the PyTorch model: from the
    encoder mean, teacher-forced and greedy."""
    forced_correct = greedy_correct = 0
    for start in range(0, len(heldout), evaluate.BATCH):
        tokens = heldout.tokens[start : start + evaluate.BATCH]
        chords = None
        if model.size.chord_size:
            chords = harmony.chroma(heldout.chords[start : start + evaluate.BATCH])
        mu, _ = onnx_encode(folder, graphs, tokens, chords)
        forced = onnx_teacher_forced_logits(folder, graphs, tokens, mu, model.start_token, chords).argmax(-1)
        greedy = onnx_decode(folder, graphs, mu, model.start_token, tokens.shape[1], lambda _, logits: logits.argmax(-1), chords)
        forced_correct += int((forced == tokens).sum())
        greedy_correct += int((greedy.argmax(-1) == tokens).sum())
    teacher_forced = round(forced_correct / heldout.tokens.size, 4)
    greedy_accuracy = round(greedy_correct / heldout.tokens.size, 4)
    for name, value in (("teacher_forced_accuracy", teacher_forced), ("greedy_accuracy", greedy_accuracy)):
        if value < reference[name] - QUANTIZED_ACCURACY_LOSS:
            raise ValueError(f"8-bit weights cost too much: {name} {value} against {reference[name]} in float32")
    return {
        "description": "the shipped graphs (8-bit decoder step) through onnxruntime, on the same held-out windows",
        "decoder_step_weights": f"8-bit, symmetric, blocks of {step_graph.BLOCK_SIZE} (MatMulNBits)",
        "teacher_forced_accuracy": teacher_forced,
        "greedy_accuracy": greedy_accuracy,
    }


def encode_means(model: MusicVAE, windows: evaluate.Windows) -> np.ndarray:
    """Encoder means of `windows` (with their chords, for a model that reads them)."""
    model.eval()
    with torch.no_grad():
        return np.concatenate([model.encode(x, chords)[0].numpy() for x, chords in evaluate.batches(windows, model)])


def latent_axes(model: MusicVAE, train: evaluate.Windows, part: str) -> dict:
    """Principal directions of the encoded training set (with their standard
    deviations) and attribute vectors (top quartile mean minus bottom quartile
    mean of the latents, MusicVAE section 5.3)."""
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(train), min(AXIS_WINDOWS, len(train)), replace=False)
    pick = lambda values: None if values is None else values[chosen]  # noqa: E731
    windows = evaluate.Windows(train.tokens[chosen], pick(train.chords), pick(train.keys))
    sample = windows.tokens
    mu = encode_means(model, windows)
    centred = mu - mu.mean(0)
    _, singular, directions = np.linalg.svd(centred, full_matrices=False)
    stds = singular / np.sqrt(len(mu) - 1)
    principal = [
        {"name": f"pc{i + 1}", "direction": directions[i].round(6).tolist(), "std": round(float(stds[i]), 6)}
        for i in range(PRINCIPAL_AXES)
    ]
    vectors = []
    calibration_windows = windows.head(CALIBRATION_WINDOWS)
    for name in attributes.attribute_names(part):
        measured = attributes.measure(name, sample, part)
        low, high = np.quantile(measured, [0.25, 0.75])
        top, bottom = mu[measured >= high], mu[measured <= low]
        if high <= low or len(top) == 0 or len(bottom) == 0:
            raise ValueError(f"attribute {name} does not vary in the training set")
        raw = top.mean(0) - bottom.mean(0)
        # A knob at +-1 moves its attribute about the data's interquartile range.
        scale = evaluate.calibrate(model, calibration_windows, part, name, raw, float(high - low))
        curves = evaluate.attribute_curves(model, calibration_windows, part, name, scale * raw)
        vectors.append(
            {
                "name": name,
                "description": attributes.ATTRIBUTES[name][0],
                "vector": (scale * raw).round(6).tolist(),
                "calibration": {"data_iqr": round(float(high - low), 4), "scale_of_quartile_difference": round(scale, 4)},
                # The plugin leaves out a knob whose attribute rises steadily
                # along its vector for fewer than 90 % of phrases.
                "monotonic_share": evaluate.monotonic_share(curves),
            }
        )
    return {"principal": principal, "attributes": vectors}


def vocabulary(part: str) -> dict:
    if part == "drums":
        return {
            "kind": "drum_classes",
            "size": vocab.DRUM_VOCAB,
            "classes": [
                {"name": name, "pitch": pitch, "input_pitches": list(inputs)}
                for name, pitch, inputs in vocab.DRUM_CLASSES
            ],
        }
    return {
        "kind": "melodic",
        "size": vocab.MELODIC_VOCAB,
        "note_off": vocab.NOTE_OFF,
        "no_event": vocab.NO_EVENT,
        "min_pitch": vocab.MIN_PITCH,
        "max_pitch": vocab.MAX_PITCH,
    }


# Training windows scored for the train/held-out gap (2 bars; 16 bars).
GAP_WINDOWS = 4096
LONG_GAP_WINDOWS = 1024


def evaluation(
    model: MusicVAE, part: str, data: Path, axes: dict, folder: Path, graphs: dict, train: evaluate.Windows, kl_weight: float
) -> dict:
    """Held-out scores of the PyTorch model, and of the graphs in `folder` as
    shipped, beside baselines fitted on `train` and the model's own score on
    (a part of) `train`."""
    heldout = evaluate.heldout_windows(part, data)
    vectors = {a["name"]: np.asarray(a["vector"], dtype=np.float32) for a in axes["attributes"]}
    source = "Groove MIDI Dataset official test split" if part == "drums" else "POP909 test songs (song number % 10 == 0)"
    accuracy = evaluate.token_accuracy(model, heldout)
    harmony_report = {} if part == "drums" else {"harmony_check": evaluate.harmony_check(model, heldout)}
    return {
        "heldout": f"all {len(heldout)} distinct 2-bar windows (hop 1 bar, 4+ onsets) of the {source}",
        "heldout_windows": int(len(heldout)),
        **accuracy,
        "train_teacher_forced_accuracy": evaluate.token_accuracy(model, train.head(GAP_WINDOWS))["teacher_forced_accuracy"],
        "baselines": evaluate.baselines(train.tokens, heldout.tokens, vocab.vocab_size(part)),
        "nll_per_window": evaluate.nll_per_window(model, heldout),
        "greedy_onsets": evaluate.reconstruction_f1(model, heldout, part),
        **harmony_report,
        "shipped_graphs": shipped_graph_score(folder, graphs, heldout, model, accuracy),
        "refined_latent": {
            "description": f"every window decoded from its refined latent (the encoder mean, then {REFINE_STEPS} Adam steps "
            f"of {REFINE_LEARNING_RATE} on the window's training loss, reconstruction + {kl_weight} KL, sigma kept): what the "
            "plugin plays for a clip it encodes; nll_per_window is the negative ELBO (KL weight 1) there",
            **evaluate.refined_scores(model, heldout, part, kl_weight),
        },
        "attribute_check": {
            "description": "mean measured attribute after decoding (greedy) mu + t * vector for t in -2..2 "
            "(vectors calibrated so that -1..+1 spans the training data's interquartile range), and the share "
            "of windows whose attribute rises monotonically with t",
            "examples": min(len(heldout), evaluate.ATTRIBUTE_EXAMPLES),
            "results": evaluate.attribute_check(model, heldout, part, vectors),
        },
        "interpolation_check": {
            "description": "mean share of steps differing from the start sequence along a slerp between two held-out latents",
            "pairs": evaluate.INTERPOLATION_PAIRS,
            "hamming": evaluate.interpolation_check(model, heldout),
        },
    }


DATA_SOURCES = {
    "drums": "Groove MIDI Dataset v1.0.0 (Magenta), 4/4 files, 9-class drum reduction",
    "bass": "POP909: bass line derived from the PIANO track (lowest sounding pitch of every 16th step, "
    "a new note where it changes or is struck again, folded by octaves into MIDI 28..55)",
    "melody": "POP909: the MELODY track (lead vocal melody), highest pitch on simultaneous onsets",
}
SPLIT_RULES = {
    "drums": "official info.csv split (train/validation/test per performance)",
    "bass": "by song: number % 10 == 0 test, == 1 validation, else train",
    "melody": "by song: number % 10 == 0 test, == 1 validation, else train",
}


def conversion_counts(converted: Path, part: str, bars: int = 2) -> dict:
    """Files and windows of `part` the converter kept or skipped, and why."""
    path = converted / "counts.json"
    if not path.is_file():
        return {}
    counts = json.loads(path.read_text())
    prefix = "drums:" if part == "drums" else "melodic:"
    return {
        "files": {k: v for k, v in counts["files"].items() if k.startswith(prefix)},
        "windows": {k: v for k, v in counts["windows"].items() if k.startswith(f"{part} {bars}-bar")},
    }


def load_checkpoint(path: Path) -> tuple[MusicVAE, dict]:
    saved = torch.load(path, weights_only=True)
    size = ModelSize(**saved["state"]["size"])
    model = build(size)
    # A run that averaged its weights (train.py --average-every) ships the average.
    model.load_state_dict(saved.get("averaged", saved["model"]))
    model.eval()
    return model, saved["state"]


def weights_path(models: Path, name: str) -> Path:
    """Where the float32 weights of model `name` are kept (the training
    checkpoint without the optimizer): every graph of the model is exported
    from them, and the PyTorch benchmark runs them."""
    return models / "weights" / f"{name}.pt"


def keep_weights(model: MusicVAE, state: dict, checkpoint: Path, weights: Path) -> None:
    """Writes the float32 weights (without the optimizer) where they are committed."""
    if not weights.exists() or not weights.samefile(checkpoint):
        weights.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "state": state}, weights)


def long_evaluation(
    model: MusicVAE, flat: tuple[MusicVAE, dict] | None, part: str, data: Path, axes: dict, folder: Path, graphs: dict, train: evaluate.Windows
) -> dict:
    """Held-out scores of a 16-bar model: accuracies overall and per bar,
    against its flat baseline (same size, data and budget) where there is
    one, the bar-to-bar structure of prior samples against the data's, and
    the checks the 2-bar models get."""
    bars = model.size.bars
    heldout = evaluate.heldout_windows(part, data, bars=bars)
    vectors = {a["name"]: np.asarray(a["vector"], dtype=np.float32) for a in axes["attributes"]}
    source = "Groove MIDI Dataset official test split" if part == "drums" else "POP909 test songs (song number % 10 == 0)"
    accuracy = evaluate.token_accuracy(model, heldout)
    compared = {"hierarchical": model}
    report = {
        "heldout": f"all {len(heldout)} distinct {bars}-bar windows (hop {data_module.window_hop(bars)} bars, 4+ onsets) of the {source}",
        "heldout_windows": int(len(heldout)),
        **accuracy,
        "train_teacher_forced_accuracy": evaluate.token_accuracy(model, train.head(LONG_GAP_WINDOWS))["teacher_forced_accuracy"],
        "baselines": evaluate.baselines(train.tokens, heldout.tokens, vocab.vocab_size(part)),
        "per_bar_accuracy": evaluate.per_bar_accuracy(model, heldout),
    }
    if flat is not None:
        flat_model, flat_state = flat
        compared["flat"] = flat_model
        report["flat_baseline"] = {
            "description": "the same encoder and decoder sizes with one decoder over all steps (no conductor), "
            "trained on the same windows for the same steps from the same 2-bar start",
            "steps": flat_state["step"],
            **evaluate.token_accuracy(flat_model, heldout),
            "per_bar_accuracy": evaluate.per_bar_accuracy(flat_model, heldout),
        }
    report["structure_check"] = evaluate.structure_check(compared, heldout)
    if part != "drums":
        report["harmony_check"] = evaluate.harmony_check(model, heldout)
    report["shipped_graphs"] = shipped_graph_score(folder, graphs, heldout, model, accuracy)
    report["attribute_check"] = {
        "description": "as for the 2-bar models, over whole 16-bar windows",
        "examples": min(len(heldout), evaluate.ATTRIBUTE_EXAMPLES),
        "results": evaluate.attribute_check(model, heldout, part, vectors),
    }
    report["interpolation_check"] = {
        "description": "mean share of steps differing from the start sequence along a slerp between two held-out latents",
        "pairs": evaluate.INTERPOLATION_PAIRS,
        "hamming": evaluate.interpolation_check(model, heldout),
    }
    return report


def export(part: str, checkpoint: Path, out: Path, data: Path, converted: Path, flat_checkpoint: Path | None = None) -> dict:
    model, state = load_checkpoint(checkpoint)
    keep_weights(model, state, checkpoint, weights_path(out.parent, out.name))
    flat = None
    if flat_checkpoint is not None:
        flat = load_checkpoint(flat_checkpoint)
        keep_weights(*flat, flat_checkpoint, weights_path(out.parent, f"{out.name}_flat"))
    bars = model.size.bars
    # Refinement minimises the loss the encoder was trained to minimise.
    kl_weight = float(state["config"]["max_beta"])
    graphs = export_graphs(model, out, kl_weight)
    # Batch 1 is what the plugin runs; 8 checks the dynamic batch axis.
    difference = max(parity(model, out, graphs, kl_weight, examples=1), parity(model, out, graphs, kl_weight, examples=8))
    if difference >= PARITY_TOLERANCE:
        raise ValueError(f"ONNX and PyTorch logits differ by {difference}")
    step_graph.quantize_file(out / graphs["decoder_step"]["file"])
    for spec in graphs.values():
        megabytes = (out / spec["file"]).stat().st_size / 1e6
        if megabytes > 15:
            raise ValueError(f"{spec['file']} is {megabytes:.1f} MB, over the 15 MB budget")
    windows = load_windows(converted, part)
    key = f"train_{bars}bar"
    train = evaluate.Windows(windows[key].astype(np.int64), windows.get(f"{key}_chord"), windows.get(f"{key}_key"))
    axes = latent_axes(model, train, part)
    (out / "latent_axes.json").write_text(json.dumps(axes))
    history = state.get("history", [])
    hop = data_module.window_hop(bars)
    manifest = {
        # 4: a hierarchical model, with its conductor graph.
        "format_version": 4 if model.size.hierarchical else 3,
        "name": out.name,
        "part": part,
        "vocabulary": vocabulary(part),
        "start_token": model.start_token,
        "steps_per_bar": vocab.STEPS_PER_BAR,
        "bars": bars,
        "latent_size": model.size.latent,
        "hierarchical": model.size.hierarchical,
        "chords": {
            "size": model.size.chord_size,
            "encoding": "12 pitch classes (C first; 1 where the chord has the pitch class, its bass note included), then 1 for no chord",
        }
        if model.size.chord_size
        else None,
        "decoder": {"layers": model.size.decoder_layers, "hidden": model.size.decoder_hidden},
        "graphs": graphs,
        # How the plugin refines an encoded clip's latent with the latent gradient graph.
        "refinement": {
            "steps": REFINE_STEPS,
            "learning_rate": REFINE_LEARNING_RATE,
            "kl_weight": kl_weight,
            "optimizer": "Adam, beta1 0.9, beta2 0.999, epsilon 1e-8",
        }
        if "latent_gradient" in graphs
        else None,
        "latent_axes": "latent_axes.json",
        "training": {
            "data": DATA_SOURCES[part],
            "split": SPLIT_RULES[part],
            "windows": f"{bars}-bar windows on bar lines, hop {hop} bar{'s' if hop > 1 else ''}, at least 4 onsets"
            + ("" if part == "drums" else "; each training window transposed by a random -5..+6 semitones that keeps it in range"),
            "train_windows": state.get("train_windows"),
            "conversion": conversion_counts(converted, part, bars),
            "warm_start": state.get("warm_start"),
            "steps": state["step"],
            "wall_time_s": round(state["wall_time_s"]),
            "hardware": state.get("hardware"),
            "size": model.size.as_dict(),
            "hyperparameters": state.get("config"),
            "final_log": history[-1] if history else None,
            "last_validation": next((r for r in reversed(history) if "validation_tf_accuracy" in r), None),
        },
        "evaluation": evaluation(model, part, data, axes, out, graphs, train, kl_weight)
        if bars == 2
        else long_evaluation(model, flat, part, data, axes, out, graphs, train),
        "parity_max_abs_diff": difference,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["drums", "bass", "melody"], required=True)
    parser.add_argument("--bars", type=int, choices=[2, 16], default=2)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--flat-checkpoint", type=Path, help="16 bars: the flat baseline to score against")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--converted", type=Path, default=Path("models/work/data"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    name = f"{args.part}_{args.bars}bar"
    checkpoint = args.checkpoint or Path("models/work/checkpoints") / f"{name}.pt"
    out = args.out or Path("models") / name
    flat = args.flat_checkpoint
    if flat is None and args.bars > 2:
        flat = next((p for p in (Path("models/work/checkpoints") / f"{name}_flat.pt", weights_path(Path("models"), f"{name}_flat")) if p.exists()), None)
    manifest = export(args.part, checkpoint, out, args.data, args.converted, flat)
    print(json.dumps({"parity": manifest["parity_max_abs_diff"], **{k: v for k, v in manifest["evaluation"].items() if "accuracy" in k}}))


if __name__ == "__main__":
    main()
