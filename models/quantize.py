#!/usr/bin/env python3
"""Make the int8 model: mixed-precision quantization of the fp32 graph's weight MatMuls and its word embeddings.

Two integer kernels of ONNX Runtime, each where the per-node sensitivity scan (models/scan.py,
table in models/README.md) says it belongs:

- DynamicQuantizeMatMul (`quantize_dynamic`: int8 weights per output channel, activations
  quantized at run time with ONE scale for the whole [rows, K] tensor): the fastest integer path
  (one int32 accumulation per output), used for the MatMuls whose scan shows them harmless
  (minimum cosine to fp32 >= 1 - 1e-4 when quantized alone).
- MatMulNBits with 8-bit weights in blocks of 32 along K and accuracy_level 4 (activations
  quantized at run time per row and per block of 32, int8 dot products): slower, but a token
  with an outlier channel only costs precision in its own 32-wide block, so it is near lossless.
  Used for the MatMuls where one shared activation scale loses most: the value projections and
  the feed-forward layers.

The word-embedding table, the graph's largest tensor (30,522 x 384 fp32, 47 MB, more than all the
MatMul weights together), is stored as int8 rows with one symmetric scale per row: a row is one
token's vector, so its own scale keeps every element within 1/254 of that row's largest, and the
fp32 graph loaded beside this one no longer pays for a second full-precision copy (issue 13's PSS
bound). The position and token-type tables, LayerNorms, softmax, the attention score/context
products, pooling and normalisation stay fp32. Deterministic: the same fp32 bytes and package pins
give the same file.

Usage: quantize.py FP32_MODEL INT8_MODEL
"""
import argparse
import logging
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic
from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

from convert import write_atomically

LAYERS = 6
NBITS_BLOCK = 32
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"

# MatMuls that one dynamic activation scale per tensor leaves within 1 - 1e-4 of fp32 (the scan's
# dynamic column); every other weight MatMul gets MatMulNBits.
DYNAMIC_MATMULS = [
    *(f"layer{i}/attention/{part}/matmul" for i in range(LAYERS) for part in ("query", "key", "attention_output")),
    "layer0/attention/value/matmul",
    "layer5/output/matmul",
]


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


def blockwise_int8(model: onnx.ModelProto, nodes: list[str], block: int = NBITS_BLOCK) -> onnx.ModelProto:
    """`nodes` -> MatMulNBits: symmetric 8-bit weights per block of `block` along K, int8 compute."""
    config = DefaultWeightOnlyQuantConfig(
        block_size=block, is_symmetric=True, accuracy_level=4, bits=8, quant_format=QuantFormat.QOperator,
        op_types_to_quantize=("MatMul",), quant_axes=(("MatMul", 0),),
    )
    with quiet_quantizer():
        quantizer = MatMulNBitsQuantizer(model, nodes_to_include=nodes, algo_config=config)
        quantizer.process()
    return quantizer.model.model


def rowwise_int8_table(model: onnx.ModelProto, table: str = WORD_EMBEDDINGS) -> onnx.ModelProto:
    """The fp32 `table` that Gather nodes index, as int8 rows with a symmetric fp32 scale per row: each
    such Gather becomes Gather(int8 rows) -> Cast -> Mul(Gather(row scales)), the same fp32 output."""
    initializers = model.graph.initializer
    [index] = [i for i, init in enumerate(initializers) if init.name == table]
    weights = numpy_helper.to_array(initializers[index]).astype(np.float32)
    scales = np.abs(weights).max(axis=1, keepdims=True) / 127
    scales[scales == 0] = 1  # an all-zero row stays zero whatever its scale
    rows = np.clip(np.round(weights / scales), -127, 127).astype(np.int8)
    rows_name, scales_name = f"{table}.int8", f"{table}.scale"
    initializers[index].CopyFrom(numpy_helper.from_array(rows, rows_name))
    initializers.append(numpy_helper.from_array(scales.astype(np.float32), scales_name))

    nodes = list(model.graph.node)
    gathers = [n for n in nodes if n.op_type == "Gather" and n.input[0] == table]
    assert gathers, f"no Gather reads {table}"
    for gather in gathers:
        ids, out, name = gather.input[1], gather.output[0], gather.name
        replacement = [
            helper.make_node("Gather", [rows_name, ids], [f"{out}/int8"], f"{name}/int8"),
            helper.make_node("Cast", [f"{out}/int8"], [f"{out}/unscaled"], f"{name}/cast", to=TensorProto.FLOAT),
            helper.make_node("Gather", [scales_name, ids], [f"{out}/scale"], f"{name}/scale"),
            helper.make_node("Mul", [f"{out}/unscaled", f"{out}/scale"], [out], f"{name}/dequantize"),
        ]
        at = nodes.index(gather)
        nodes[at:at + 1] = replacement
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def mixed_int8(fp32_model: Path, int8_model: Path, dynamic_nodes: list[str], block: int = NBITS_BLOCK) -> None:
    """`dynamic_nodes` dynamically quantized, every other weight MatMul blockwise."""
    blockwise_nodes = [n for n in weight_matmuls(onnx.load(str(fp32_model))) if n not in dynamic_nodes]
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "dynamic.onnx"
        dynamic_int8(fp32_model, staged, dynamic_nodes)
        model = blockwise_int8(onnx.load(str(staged)), blockwise_nodes, block)
    model = rowwise_int8_table(model)
    onnx.checker.check_model(model)
    write_atomically(int8_model, model.SerializeToString(deterministic=True))


def quantize(fp32_model: Path, int8_model: Path) -> None:
    mixed_int8(fp32_model, int8_model, DYNAMIC_MATMULS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fp32_model", type=Path)
    parser.add_argument("int8_model", type=Path)
    args = parser.parse_args()
    quantize(args.fp32_model, args.int8_model)
    print(f"quantize: wrote {args.int8_model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
