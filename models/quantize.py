#!/usr/bin/env python3
"""Make the int8 model: every weight MatMul in int8, with the few outlier activation channels kept in fp32.

ONNX Runtime's fastest integer MatMul (DynamicQuantizeMatMul, from `quantize_dynamic`: int8 weights
per output channel, activations quantized at run time with ONE scale for the whole [rows, K] tensor)
loses accuracy on this model because a handful of activation channels are 5-15x larger than the
rest: LayerNorm outputs reach |x| = 22-30 in channel 99 against a median channel maximum of 1.9, and
each layer's GELU output has one or two such channels. One scale per tensor then leaves the ordinary
channels a few steps of resolution.

So, before quantizing, each MatMul that reads such a tensor is split in two (the decomposition of
LLM.int8(), Dettmers et al. 2022, applied to a BERT):

  x @ W = (x * inlier_mask) @ W[outliers zeroed]   -> quantized: its range is now the ordinary channels'
        + x[..., outliers]  @ W[outlier rows]       -> fp32: [rows, 1-10] x [1-10, N], nearly free

The inlier mask also zeroes the padding positions of a batch, whose hidden states are never read but
would otherwise set the shared scale (their LayerNorm outputs reach twice a real token's range): with
them masked, a row's answer barely depends on what it is batched with.

Which MatMuls are split, and which channels, was read from the calibration set and the per-node scan
(`scan.py channels` and `scan.py nodes`, tables in models/README.md) and is written down here, so the
same fp32 bytes always give the same int8 bytes. The word-embedding table, the graph's largest tensor,
is stored as int8 rows with one scale per row. The position and token-type tables, LayerNorms, GELU,
softmax, the attention score/context products, pooling and normalisation stay fp32.

Usage: quantize.py PLAIN_FP32_MODEL INT8_MODEL   (the plain graph convert.py writes)
"""
import argparse
import logging
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from convert import write_atomically

LAYERS = 6
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"

# Channels of the LayerNorm outputs (the residual stream) whose largest |x| over the calibration set is
# more than 3x the median channel's, in any layer. One set for all of them: the residual stream carries
# the same outliers through every layer (channel 99 is the largest in all twelve LayerNorms).
LAYER_NORM_OUTLIERS = [63, 99, 127, 157, 223, 267, 303, 319, 338, 383]
# Channels of each layer's GELU output more than 6x the median channel's; layers 4 and 5 have none.
GELU_OUTLIERS = {0: [856], 1: [607], 2: [218, 1004], 3: [358]}


def outlier_splits() -> dict[str, list[int]]:
    """MatMul name -> the input channels it keeps in fp32: value and both feed-forward MatMuls, where the
    per-node scan found the loss. Query and key read the same LayerNorm output as value but stay whole (the
    scan finds them harmless: the softmax absorbs their error), and so does the attention output, whose
    input has no outlier channels."""
    splits = {}
    for layer in range(LAYERS):
        splits[f"layer{layer}/attention/value/matmul"] = LAYER_NORM_OUTLIERS
        splits[f"layer{layer}/intermediate/matmul"] = LAYER_NORM_OUTLIERS
        if layer in GELU_OUTLIERS:
            splits[f"layer{layer}/output/matmul"] = GELU_OUTLIERS[layer]
    return splits


def weight_matmuls(model: onnx.ModelProto) -> list[str]:
    """The MatMuls with a weight initializer (convert.py names them `<linear>/matmul`); the
    attention's activation x activation products (`scores`, `context`) are not among them."""
    initializers = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in initializers]


@contextmanager
def quiet_quantizer():
    """The quantizers log a generic "consider pre-processing" warning on every run and one INFO
    line per node; neither says anything about this graph."""
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.setLevel(logging.ERROR)
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
        root_logger.setLevel(level)


def dynamic_int8(source: Path, target: Path, nodes: list[str]) -> None:
    """`nodes` -> DynamicQuantizeMatMul: int8 weights per output channel, activations per tensor."""
    with quiet_quantizer():
        quantize_dynamic(
            source, target, nodes_to_quantize=nodes, op_types_to_quantize=["MatMul"],
            per_channel=True, weight_type=QuantType.QInt8,
        )


@dataclass
class GraphEdit:
    """The graph being edited: its nodes as a list (ONNX keeps them in a repeated field) and initializers by name."""

    model: onnx.ModelProto
    nodes: list[onnx.NodeProto]

    @classmethod
    def of(cls, model: onnx.ModelProto) -> "GraphEdit":
        return cls(model, list(model.graph.node))

    def initializer(self, name: str) -> onnx.TensorProto:
        return next(i for i in self.model.graph.initializer if i.name == name)

    def add_initializer(self, value: np.ndarray, name: str) -> str:
        self.model.graph.initializer.append(numpy_helper.from_array(value, name))
        return name

    def node(self, name: str) -> onnx.NodeProto:
        return next(n for n in self.nodes if n.name == name)

    def insert_before(self, anchor: onnx.NodeProto, new: list[onnx.NodeProto]) -> None:
        at = self.nodes.index(anchor)
        self.nodes[at:at] = new

    def insert_after(self, anchor: onnx.NodeProto, new: list[onnx.NodeProto]) -> None:
        at = self.nodes.index(anchor) + 1
        self.nodes[at:at] = new

    def finish(self) -> onnx.ModelProto:
        del self.model.graph.node[:]
        self.model.graph.node.extend(self.nodes)
        return self.model


def split_outlier_channels(
    model: onnx.ModelProto, splits: dict[str, list[int]], mask_padding: bool = True
) -> onnx.ModelProto:
    """Each MatMul in `splits` (whose weight is followed by its bias Add, as convert.py writes every linear
    layer) becomes an inlier MatMul plus an fp32 MatMul over its outlier channels, summed after the bias.
    `mask_padding` also zeroes the padding positions of the inlier part (only scan.py turns it off)."""
    edit = GraphEdit.of(model)
    token_mask = []
    if mask_padding:
        # [batch, seq, 1]: 1 for a real token, 0 for padding.
        edit.add_initializer(np.array([2], np.int64), "token_mask/axis")
        token_mask = [
            helper.make_node("Cast", ["attention_mask"], ["token_mask/float"], "token_mask/float", to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["token_mask/float", "token_mask/axis"], ["token_mask"], "token_mask"),
        ]
        edit.insert_before(edit.nodes[0], token_mask)
    masks: dict[tuple[int, ...], str] = {}  # outlier channels -> the inlier mask's name
    parts: dict[str, tuple[str, str]] = {}  # a split MatMul's input -> its (inliers, outliers) tensors
    for name, channels in splits.items():
        matmul = edit.node(name)
        source = matmul.input[0]
        weight = edit.initializer(matmul.input[1])
        values = numpy_helper.to_array(weight).copy()
        if source not in parts:
            key = tuple(channels)
            if key not in masks:
                tag = f"inliers{len(masks)}"
                keep = np.ones(values.shape[0], np.float32)
                keep[list(channels)] = 0
                mask = edit.add_initializer(keep, f"{tag}/channels")
                if mask_padding:
                    channel_mask, mask = mask, f"{tag}/mask"
                    edit.insert_after(token_mask[-1], [helper.make_node("Mul", ["token_mask", channel_mask], [mask], mask)])
                masks[key] = mask
            index = edit.add_initializer(np.array(channels, np.int64), f"{source}/outlier_channels")
            parts[source] = (f"{source}/inliers", f"{source}/outliers")
            edit.insert_before(matmul, [
                helper.make_node("Mul", [source, masks[key]], [parts[source][0]], parts[source][0]),
                helper.make_node("Gather", [source, index], [parts[source][1]], parts[source][1], axis=2),
            ])
        inliers, outliers = parts[source]
        outlier_rows = edit.add_initializer(values[channels, :].copy(), f"{weight.name}/outlier_rows")
        values[channels, :] = 0
        weight.CopyFrom(numpy_helper.from_array(values, weight.name))
        matmul.input[0] = inliers
        [bias] = [n for n in edit.nodes if matmul.output[0] in n.input]
        out = bias.output[0]
        bias.output[0] = f"{out}/inlier_part"
        edit.insert_after(bias, [
            helper.make_node("MatMul", [outliers, outlier_rows], [f"{out}/outlier_part"], f"{name}/outliers"),
            helper.make_node("Add", [f"{out}/inlier_part", f"{out}/outlier_part"], [out], f"{name}/sum"),
        ])
    return edit.finish()


def rowwise_int8_table(model: onnx.ModelProto, table: str = WORD_EMBEDDINGS) -> onnx.ModelProto:
    """The fp32 `table` that Gather nodes index, as int8 rows with a symmetric fp32 scale per row: each
    such Gather becomes Gather(int8 rows) -> Cast -> Mul(Gather(row scales)), the same fp32 output."""
    edit = GraphEdit.of(model)
    initializer = edit.initializer(table)
    weights = numpy_helper.to_array(initializer).astype(np.float32)
    scales = np.abs(weights).max(axis=1, keepdims=True) / 127
    scales[scales == 0] = 1  # an all-zero row stays zero whatever its scale
    rows = np.clip(np.round(weights / scales), -127, 127).astype(np.int8)
    rows_name, scales_name = f"{table}.int8", f"{table}.scale"
    initializer.CopyFrom(numpy_helper.from_array(rows, rows_name))
    edit.add_initializer(scales.astype(np.float32), scales_name)

    gathers = [n for n in edit.nodes if n.op_type == "Gather" and n.input[0] == table]
    assert gathers, f"no Gather reads {table}"
    for gather in gathers:
        ids, out, name = gather.input[1], gather.output[0], gather.name
        edit.insert_before(gather, [
            helper.make_node("Gather", [rows_name, ids], [f"{out}/int8"], f"{name}/int8"),
            helper.make_node("Cast", [f"{out}/int8"], [f"{out}/unscaled"], f"{name}/cast", to=TensorProto.FLOAT),
            helper.make_node("Gather", [scales_name, ids], [f"{out}/scale"], f"{name}/scale"),
            helper.make_node("Mul", [f"{out}/unscaled", f"{out}/scale"], [out], f"{name}/dequantize"),
        ])
        edit.nodes.remove(gather)
    return edit.finish()


def quantize_with_splits(
    fp32_model: Path, int8_model: Path, splits: dict[str, list[int]], mask_padding: bool = True
) -> None:
    """Splits `splits`' MatMuls, then quantizes every original weight MatMul (never the fp32 outlier parts)."""
    model = onnx.load(str(fp32_model))
    matmuls = weight_matmuls(model)
    model = split_outlier_channels(model, splits, mask_padding)
    with tempfile.TemporaryDirectory() as tmp:
        split, quantized = Path(tmp) / "split.onnx", Path(tmp) / "quantized.onnx"
        onnx.save(model, str(split))
        dynamic_int8(split, quantized, matmuls)
        model = rowwise_int8_table(onnx.load(str(quantized)))
    onnx.checker.check_model(model)
    write_atomically(int8_model, model.SerializeToString(deterministic=True))


def quantize(fp32_model: Path, int8_model: Path) -> None:
    quantize_with_splits(fp32_model, int8_model, outlier_splits())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fp32_model", type=Path, help="the plain graph convert.py writes")
    parser.add_argument("int8_model", type=Path)
    args = parser.parse_args()
    quantize(args.fp32_model, args.int8_model)
    print(f"quantize: wrote {args.int8_model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
