"""Decode latency of the committed models in the plugin's engine (its own bench,
`cargo bench -p latent_trio --bench decode`, run from here) against what a
user would otherwise run on the same weights: PyTorch eager and onnxruntime
from Python, one thread each, one 2-bar phrase decoded step by step as the
plugin does (batch 1, sampling at temperature 0.5). Also the floor:
multiply-adds of one decode over a measured single-core float32
matrix-multiply throughput. Prints one table with the ratios.

Run: python -m latent_trio_models.benchmark   (from the repository root)
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from torch.nn import functional as F

from . import export, harmony

RUNS = 100
PARTS = ("drums", "bass", "melody")


def timed(function, runs: int = RUNS) -> list[float]:
    function()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def describe(times: list[float]) -> str:
    ordered = sorted(times)
    return f"median {statistics.median(ordered) * 1e3:.2f} ms (p10 {ordered[len(ordered) // 10] * 1e3:.2f}, p90 {ordered[len(ordered) * 9 // 10] * 1e3:.2f})"


def torch_decoder(folder: Path):
    """The PyTorch model with the trained weights the ONNX files were exported from."""
    manifest = json.loads((folder / "manifest.json").read_text())
    model, _ = export.load_checkpoint(export.weights_path(folder.parent, manifest["name"]))
    generator = torch.Generator().manual_seed(0)

    chords = torch.as_tensor(phrase_chords(model.size.steps)) if model.size.chord_size else None

    @torch.no_grad()
    def decode() -> None:
        z = torch.randn(1, model.size.latent, generator=generator)
        state = model.initial_state(z)
        token = torch.full((1, 1), model.start_token, dtype=torch.long)
        for step in range(model.size.steps):
            step_chord = None if chords is None else chords[:, step : step + 1]
            logits, state = model.decode_inputs(token, z, state, step_chord)
            token = torch.multinomial(F.softmax(logits[:, -1] / 0.5, dim=-1), 1, generator=generator)

    return model, decode


def onnx_decoder(folder: Path):
    manifest = json.loads((folder / "manifest.json").read_text())
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    init = onnxruntime.InferenceSession(str(folder / "decoder_init.onnx"), options, providers=["CPUExecutionProvider"])
    step = onnxruntime.InferenceSession(str(folder / "decoder_step.onnx"), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    steps = manifest["steps_per_bar"] * manifest["bars"]
    chords = phrase_chords(steps)[0] if manifest.get("chords") else None

    def decode() -> None:
        z = rng.standard_normal((1, manifest["latent_size"])).astype(np.float32)
        h, c, conditioning = init.run(None, {"z": z})
        token = np.array([manifest["start_token"]], dtype=np.int64)
        for index in range(steps):
            inputs = {"token": token, "conditioning": conditioning, "h": h, "c": c}
            if chords is not None:
                inputs["chord"] = chords[index : index + 1]
            logits, h, c = step.run(None, inputs)
            p = np.exp((logits[0] - logits[0].max()) / 0.5)
            token = np.array([rng.choice(len(p), p=p / p.sum())], dtype=np.int64)

    return decode


def phrase_chords(steps: int) -> np.ndarray:
    """[1, steps, 13] model inputs of the plugin's default progression, C G Am F
    (two chords a bar)."""
    masks = [harmony.chord_mask(label) for label in ("C:maj", "G:maj", "A:min", "F:maj")]
    per_chord = steps // len(masks)
    return harmony.chroma(np.array([[masks[step // per_chord] for step in range(steps)]], dtype=np.uint16))


def multiply_adds(size) -> int:
    """Multiply-adds one 2-bar decode needs: once per phrase the initial state
    and z's share of the first layer's gates, then per step the first layer
    (embedding and state), the other layers (input and state) and the output
    projection, 4 gates per LSTM layer."""
    gates = 4 * size.decoder_hidden
    per_phrase = size.latent * (2 * size.decoder_layers * size.decoder_hidden + gates)
    first = gates * (size.embedding + size.chord_size + size.decoder_hidden)
    rest = (size.decoder_layers - 1) * gates * 2 * size.decoder_hidden
    logits = size.decoder_hidden * size.vocab
    return per_phrase + size.steps * (first + rest + logits)


def multiply_adds_16_bars(size) -> int:
    """Multiply-adds of one whole 16-bar decode of a hierarchical model: the
    conductor (its initial state, 16 steps of its LSTM and the bar
    embeddings), then every bar as a 2-bar model decodes its phrase (initial
    state and conditioning from the bar's embedding, 16 steps)."""
    hidden, layers = size.conductor_hidden, size.conductor_layers
    conductor = size.latent * 2 * layers * hidden + size.bars * (
        4 * hidden * (1 + hidden) + (layers - 1) * 4 * hidden * 2 * hidden + hidden * size.latent
    )
    return conductor + size.bars * multiply_adds(replace(size, steps=size.steps_per_bar))


def single_core_macs_per_second() -> float:
    """Best of several 512x512 float32 matrix products on one thread."""
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    best = min(timed(lambda: torch.mm(a, b), runs=20))
    return 512**3 / best


def plugin_medians() -> dict[str, float]:
    """Median milliseconds per phrase of each model in the plugin's engine
    (`drums_2bar`: one 2-bar phrase, `drums_16bar`: one whole 16-bar phrase),
    from its own bench (`cargo bench -p latent_trio --bench decode`), run first
    so that nothing else shares the machine."""
    bench = subprocess.run(
        ["cargo", "bench", "-q", "-p", "latent_trio", "--bench", "decode"], capture_output=True, text=True, check=True
    )
    medians = {}
    for line in bench.stdout.splitlines():
        for pattern, suffix in ((r"(\w+)\s+one 2-bar phrase: median ([\d.]+) ms", "2bar"), (r"(\w+)\s+16-bar phrase, bars 1-16 .*?: median ([\d.]+) ms", "16bar")):
            found = re.match(pattern, line)
            if found:
                medians[f"{found.group(1)}_{suffix}"] = float(found.group(2))
    expected = {f"{part}_{bars}bar" for part in PARTS for bars in (2, 16)}
    if set(medians) != expected:
        raise RuntimeError(f"the decode bench printed no median for some model:\n{bench.stdout}")
    return medians


def main() -> None:
    torch.set_num_threads(1)
    plugin = plugin_medians()
    peak = single_core_macs_per_second()
    print(f"single-core float32 matmul: {peak / 1e9:.1f} GMAC/s (torch.mm 512x512, 1 thread)")
    print("| model | MACs per decode | floor | plugin (Rust, ort) | onnxruntime (Python) | PyTorch eager | eager / plugin | Python ORT / plugin | plugin / floor |")
    print("| --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |")
    for part in PARTS:
        folder = Path("models") / f"{part}_2bar"
        model, torch_decode = torch_decoder(folder)
        macs = multiply_adds(model.size)
        floor_ms = macs / peak * 1e3
        eager = timed(torch_decode)
        ort = timed(onnx_decoder(folder))
        ms = plugin[f"{part}_2bar"]
        print(
            f"| {part}_2bar | {macs / 1e6:.1f} M | {floor_ms:.3f} ms | {ms:.3f} ms | {describe(ort)} | {describe(eager)} "
            f"| {statistics.median(eager) * 1e3 / ms:.1f}x | {statistics.median(ort) * 1e3 / ms:.1f}x | {ms / floor_ms:.1f}x |"
        )
    for part in PARTS:
        # The plugin decodes the 16 bars as one batch; only the floor is compared.
        long, _ = export.load_checkpoint(export.weights_path(Path("models"), f"{part}_16bar"))
        macs = multiply_adds_16_bars(long.size)
        floor_ms = macs / peak * 1e3
        ms = plugin[f"{part}_16bar"]
        print(f"| {part}_16bar (16 bars) | {macs / 1e6:.1f} M | {floor_ms:.3f} ms | {ms:.3f} ms | - | - | - | - | {ms / floor_ms:.1f}x |")


if __name__ == "__main__":
    main()
