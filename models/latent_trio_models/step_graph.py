"""The decoder step as the plugin runs it: one explicit LSTM cell per layer,
with 8-bit weights, conditioned on z through a per-phrase `conditioning`.

Why not the exporter's LSTM graph: the plugin decodes one sequence at a time
(batch 1), so each of the 32 steps of a phrase is a matrix-vector product
that reads every decoder weight once. Float32 weights are about 4 MB per step,
and streaming them dominates the decode. Written as plain MatMuls, the weights
can be block-quantized to 8 bits (ONNX Runtime's `MatMulNBits`, the kernel it
uses for batch-1 language-model decoding): a quarter of the bytes, and integer
dot products where the CPU has them. Each cell also concatenates its input and
its previous state so that a layer is one MatMul instead of two. And since z
is the same for all 32 steps, what it adds to the first layer's gates (with
that layer's bias) is computed once per phrase by `decoder_init`, as
`conditioning`, instead of at every step.

The float32 build of the same graph is checked against PyTorch (export.parity)
before it is quantized; the quantized one is scored on held-out data.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .model import MusicVAE

# The contract's opset (models/README.md).
OPSET = 17
# Weights are quantized in blocks of this many input rows, each with its own scale.
BLOCK_SIZE = 32
# ONNX Runtime's accuracy level 4: activations quantized to int8 for the dot
# products (level 0 keeps float32 and is many times slower for 8-bit weights).
ACCURACY_LEVEL = 4


def _gates(a: np.ndarray) -> np.ndarray:
    """Rows reordered from PyTorch's gate order (i, f, g, o) to (i, f, o, g),
    so that the three sigmoid gates are contiguous."""
    i, f, g, o = np.split(a, 4, axis=0)
    return np.concatenate([i, f, o, g], axis=0)


def _cell_weights(model: MusicVAE, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """The layer's step input and recurrent weights stacked as one
    [input + hidden, 4 * hidden] matrix, and its bias. The first layer's
    input is the token embedding (and the step's chord, for a chord-conditioned
    model): z enters through `conditioning`."""
    lstm = model.decoder
    w_ih = _gates(getattr(lstm, f"weight_ih_l{layer}").detach().numpy())
    if layer == 0:
        embedding, latent = model.size.embedding, model.size.latent
        w_ih = np.concatenate([w_ih[:, :embedding], w_ih[:, embedding + latent :]], axis=1)
    w_hh = _gates(getattr(lstm, f"weight_hh_l{layer}").detach().numpy())
    bias = (getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")).detach().numpy()
    return np.ascontiguousarray(np.concatenate([w_ih, w_hh], axis=1).T), _gates(bias)


def conditioning_weights(model: MusicVAE) -> tuple[np.ndarray, np.ndarray]:
    """conditioning = z @ weights + bias: z's part of the first layer's gates
    ([latent, 4 * hidden], gate order of this graph) plus that layer's bias."""
    embedding, latent = model.size.embedding, model.size.latent
    w_z = _gates(model.decoder.weight_ih_l0.detach().numpy())[:, embedding : embedding + latent]
    _, bias = _cell_weights(model, 0)
    return np.ascontiguousarray(w_z.T), bias


def build(model: MusicVAE) -> onnx.ModelProto:
    """The float32 step graph: token [batch], (chord [batch, 13] for a
    chord-conditioned model), conditioning [batch, 4 * hidden], h and c
    [layers, batch, hidden] -> logits [batch, vocab], h_out, c_out."""
    size = model.size
    hidden = size.decoder_hidden
    nodes: list[onnx.NodeProto] = []
    constants: list[onnx.TensorProto] = []

    def constant(name: str, value: np.ndarray) -> str:
        constants.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], outputs: list[str], **attributes) -> None:
        nodes.append(helper.make_node(op, inputs, outputs, **attributes))

    # Everything keeps a leading axis of 1 (the layer axis of h and c), so
    # that no step needs a reshape.
    constant("axis_0", np.array([0], dtype=np.int64))
    constant("sigmoid_and_tanh", np.array([3 * hidden, hidden], dtype=np.int64))
    constant("embedding", model.decoder_embedding.weight.detach().numpy())
    node("Gather", ["embedding", "token"], ["embedded_2d"])
    node("Unsqueeze", ["embedded_2d", "axis_0"], ["embedded"])
    chords = size.chord_size > 0
    if chords:
        node("Unsqueeze", ["chord", "axis_0"], ["chord_3d"])
    node("Unsqueeze", ["conditioning", "axis_0"], ["conditioning_3d"])
    layers = size.decoder_layers
    node("Split", ["h"], [f"h{k}" for k in range(layers)], axis=0)
    node("Split", ["c"], [f"c{k}" for k in range(layers)], axis=0)

    cell_input = ["embedded", "chord_3d"] if chords else ["embedded"]
    for k in range(layers):
        weights, bias = _cell_weights(model, k)
        node("Concat", [*cell_input, f"h{k}"], [f"x{k}"], axis=-1)
        node("MatMul", [f"x{k}", constant(f"weights_{k}", weights)], [f"product{k}"])
        # The first layer's bias is in the conditioning.
        offset = "conditioning_3d" if k == 0 else constant(f"bias_{k}", bias)
        node("Add", [f"product{k}", offset], [f"gates{k}"])
        node("Split", [f"gates{k}", "sigmoid_and_tanh"], [f"ifo_in{k}", f"g_in{k}"], axis=-1)
        node("Sigmoid", [f"ifo_in{k}"], [f"ifo{k}"])
        node("Split", [f"ifo{k}"], [f"i{k}", f"f{k}", f"o{k}"], axis=-1)
        node("Tanh", [f"g_in{k}"], [f"g{k}"])
        node("Mul", [f"f{k}", f"c{k}"], [f"kept{k}"])
        node("Mul", [f"i{k}", f"g{k}"], [f"written{k}"])
        node("Add", [f"kept{k}", f"written{k}"], [f"c_new{k}"])
        node("Tanh", [f"c_new{k}"], [f"c_squashed{k}"])
        node("Mul", [f"o{k}", f"c_squashed{k}"], [f"h_new{k}"])
        cell_input = [f"h_new{k}"]

    last = f"h_new{layers - 1}"
    to_logits = model.to_logits
    node("MatMul", [last, constant("logits_weights", to_logits.weight.detach().numpy().T)], ["logits_product"])
    node("Add", ["logits_product", constant("logits_bias", to_logits.bias.detach().numpy())], ["logits_3d"])
    node("Squeeze", ["logits_3d", "axis_0"], ["logits"])
    node("Concat", [f"h_new{k}" for k in range(layers)], ["h_out"], axis=0)
    node("Concat", [f"c_new{k}" for k in range(layers)], ["c_out"], axis=0)

    state = [layers, "batch", hidden]
    inputs = [
        helper.make_tensor_value_info("token", TensorProto.INT64, ["batch"]),
        *([helper.make_tensor_value_info("chord", TensorProto.FLOAT, ["batch", size.chord_size])] if chords else []),
        helper.make_tensor_value_info("conditioning", TensorProto.FLOAT, ["batch", 4 * hidden]),
        helper.make_tensor_value_info("h", TensorProto.FLOAT, state),
        helper.make_tensor_value_info("c", TensorProto.FLOAT, state),
    ]
    outputs = [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", size.vocab]),
        helper.make_tensor_value_info("h_out", TensorProto.FLOAT, state),
        helper.make_tensor_value_info("c_out", TensorProto.FLOAT, state),
    ]
    graph = helper.make_graph(nodes, "decoder_step", inputs, outputs, constants)
    step = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="latent_trio_models")
    # IR 10 is what ONNX Runtime 1.2x/1.3x reads; the helper would stamp the newest.
    step.ir_version = 10
    onnx.checker.check_model(step, full_check=True)
    return step


def quantize(step: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with every MatMul's weights in 8-bit blocks
    (`com.microsoft.MatMulNBits`, symmetric, one scale per block)."""
    # Imported here: the quantization tools pull in more of onnxruntime than
    # the rest of the pipeline needs.
    from onnxruntime.quantization import matmul_nbits_quantizer

    # It logs a line per node at INFO.
    logging.getLogger(matmul_nbits_quantizer.__name__).setLevel(logging.WARNING)
    quantizer = matmul_nbits_quantizer.MatMulNBitsQuantizer(
        step, bits=8, block_size=BLOCK_SIZE, is_symmetric=True, accuracy_level=ACCURACY_LEVEL
    )
    quantizer.process()
    quantized = quantizer.model.model
    if any(n.op_type == "MatMul" for n in quantized.graph.node):
        raise ValueError("the quantizer left a MatMul in float32")
    return quantized


def write(model: MusicVAE, path: Path) -> None:
    """Writes the float32 step graph of `model` to `path`."""
    onnx.save(build(model), str(path))


def quantize_file(path: Path) -> None:
    """Rewrites the float32 step graph at `path` with 8-bit weights, so that
    the graph quantized is exactly the one the parity check read."""
    onnx.save(quantize(onnx.load(str(path))), str(path))
