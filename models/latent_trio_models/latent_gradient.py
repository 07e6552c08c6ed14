"""The latent gradient graph: the gradient of a window's training loss
(reconstruction + the KL weight times the KL) with respect to its latent, which the plugin follows to refine an encoder mean
(`MusicVAE.refine`) when it encodes a clip.

ONNX Runtime runs no gradient operator at inference, and the exporter cannot
differentiate through its LSTM loop, so the graph is traced with torch's
`make_fx` (which records the backward pass as plain operators) from the
decoder written out step by step: the same weights, one LSTM cell per layer
and step. Batch 1: the plugin refines one clip at a time.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
import torch
from torch._decomp import core_aten_decompositions
from torch.fx.experimental.proxy_tensor import make_fx

from .model import MusicVAE, window_loss

FILE = "latent_gradient.onnx"


def unrolled_logits(model: MusicVAE, tokens: torch.Tensor, z: torch.Tensor, chords: torch.Tensor | None) -> torch.Tensor:
    """`model.teacher_forced_logits`, one LSTM cell per layer and step."""
    lstm = model.decoder
    h, c = (list(state.unbind(0)) for state in model.initial_state(z))
    embedded = model.decoder_embedding(model.shifted(tokens))
    outputs = []
    for step in range(tokens.shape[1]):
        x = torch.cat([embedded[:, step], z, *([] if chords is None else [chords[:, step]])], dim=-1)
        for layer in range(model.size.decoder_layers):
            weights = lambda kind: getattr(lstm, f"{kind}_l{layer}")  # noqa: E731
            gates = x @ weights("weight_ih").T + h[layer] @ weights("weight_hh").T + weights("bias_ih") + weights("bias_hh")
            i, f, g, o = gates.chunk(4, dim=-1)
            c[layer] = torch.sigmoid(f) * c[layer] + torch.sigmoid(i) * torch.tanh(g)
            h[layer] = torch.sigmoid(o) * torch.tanh(c[layer])
            x = h[layer]
        outputs.append(x)
    return model.to_logits(torch.stack(outputs, dim=1))


def gradient(
    model: MusicVAE,
    tokens: torch.Tensor,
    z: torch.Tensor,
    sigma: torch.Tensor,
    chords: torch.Tensor | None,
    kl_weight: float,
) -> torch.Tensor:
    """d(reconstruction + kl_weight KL)/dz of each window, through the unrolled decoder."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        loss = window_loss(unrolled_logits(model, tokens, z, chords), tokens, z, sigma, kl_weight)
        (found,) = torch.autograd.grad(loss.sum(), [z])
    return found


def signature(model: MusicVAE) -> dict:
    """The graph's contract entry (models/README.md)."""
    size = model.size

    def tensor(name: str, dtype: str, shape: list) -> dict:
        return {"name": name, "dtype": dtype, "shape": shape}

    chords = [tensor("chords", "float32", [1, size.steps, size.chord_size])] if size.chord_size else []
    latent = lambda name: tensor(name, "float32", [1, size.latent])  # noqa: E731
    return {
        "file": FILE,
        "inputs": [tensor("tokens", "int64", [1, size.steps]), *chords, latent("z"), latent("sigma")],
        "outputs": [latent("gradient")],
    }


def write(model: MusicVAE, path: Path, kl_weight: float) -> None:
    """Traces `gradient` for one window and writes it as one ONNX file."""
    model.eval()
    trained = [parameter.requires_grad_(False) for parameter in model.parameters() if parameter.requires_grad]
    size = model.size
    tokens = torch.zeros(1, size.steps, dtype=torch.long)
    latent = torch.zeros(1, size.latent)
    chords = (torch.zeros(1, size.steps, size.chord_size),) if size.chord_size else ()

    def traced(tokens: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        *chords, z, sigma = rest
        return gradient(model, tokens, z, sigma, chords[0] if chords else None, kl_weight)

    graph = make_fx(traced, decomposition_table=core_aten_decompositions())(tokens, *chords, latent, latent + 1.0).eval()
    spec = signature(model)
    # The exporter warns about every torchvision operator it cannot register: none is ours.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    program = torch.onnx.export(
        graph,
        (tokens, *chords, latent, latent + 1.0),
        input_names=[t["name"] for t in spec["inputs"]],
        output_names=[t["name"] for t in spec["outputs"]],
        dynamo=True,
        verbose=False,
    )
    onnx.save_model(program.model_proto, str(path))
    for parameter in trained:
        parameter.requires_grad_(True)
