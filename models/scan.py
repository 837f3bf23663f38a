#!/usr/bin/env python3
"""How each MatMul and each quantization recipe costs accuracy, and what it buys in speed.

Not part of `make models` (it takes minutes): run it after changing the converter, the
quantizer or ONNX Runtime, and copy its tables into models/README.md.

  channels    the outlier activation channels: each weight MatMul input's largest |x| per channel
              over the calibration set, and the channels above 3x (LayerNorm outputs) or 6x (GELU
              outputs) the median channel's. This is what quantize.LAYER_NORM_OUTLIERS and
              quantize.GELU_OUTLIERS are read from.
  nodes       per-node sensitivity: one weight MatMul at a time dynamically quantized (int8
              weights per channel, one activation scale per tensor), the rest fp32; mean and
              minimum cosine to the fp32 graph over a subset of the truth set (every 8th
              question plus all hard cases). This is what quantize.outlier_splits is read from.
  candidates  whole recipes: accuracy on the shared reference (31 items) and on the full truth
              set (models/truth.py), a padded batch against single runs, and in-process speed
              with ONNX Runtime (2 intra-op threads): single sentences and length-sorted batches
              of 32, measured in interleaved rounds against fp32 so that other load on the
              machine hits every model alike.

Usage: scan.py [channels|nodes|candidates|all] [--seconds-per-round S] [--rounds N]
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer
from tokenizers import Encoding

from convert import PLAIN_GRAPH
from quantize import (
    GELU_OUTLIERS, LAYER_NORM_OUTLIERS, LAYERS, dynamic_int8, outlier_splits, quantize, quantize_with_splits,
    quiet_quantizer, weight_matmuls,
)
from truth import (
    DEFAULT_TRUTH, EVALUATION_SIZE, FP32_MODEL, TruthReport, build_truth, compare, load_truth, session_for,
    split_questions, truth_is_current,
)
from verify import DEFAULT_REFERENCE, DEFAULT_TOKENIZER, load_tokenizer, verify

# The int8 recipes start from the plain graph (quantize.py), by its node names.
PLAIN_MODEL = FP32_MODEL.with_name(PLAIN_GRAPH)

TOKENIZER = load_tokenizer(DEFAULT_TOKENIZER)
# Every 8th question of the truth set plus everything after the questions (hard cases, long texts).
NODE_SCAN_STRIDE = 8
# A channel is an outlier when its largest |x| is more than this many times the median channel's.
LAYER_NORM_OUTLIER_RATIO = 3
GELU_OUTLIER_RATIO = 6


def feeds(encodings: list[Encoding]) -> dict[str, np.ndarray]:
    seq = max(len(e.ids) for e in encodings)

    def padded(rows: list[list[int]]) -> np.ndarray:
        return np.array([row + [0] * (seq - len(row)) for row in rows], dtype=np.int64)

    return {
        "input_ids": padded([e.ids for e in encodings]),
        "attention_mask": padded([e.attention_mask for e in encodings]),
        "token_type_ids": padded([e.type_ids for e in encodings]),
    }


def channel_maxima() -> dict[str, np.ndarray]:
    """Each weight MatMul input's largest |x| per channel over the calibration questions, run one at a time."""
    model = onnx.load(str(PLAIN_MODEL))
    matmuls = set(weight_matmuls(model))
    inputs = sorted({node.input[0] for node in model.graph.node if node.name in matmuls})
    for name in inputs:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    maxima = {name: np.zeros(0) for name in inputs}
    for text in split_questions().calibration:
        for name, value in zip(inputs, session.run(inputs, feeds([TOKENIZER.encode(text)]))):
            largest = np.abs(value[0]).max(axis=0)
            maxima[name] = largest if not maxima[name].size else np.maximum(maxima[name], largest)
    return maxima


def channel_table() -> str:
    lines = [
        "| MatMul input | median channel max | largest channels (max, × median) | outliers by the rule | in quantize.py |",
        "|---|---|---|---|---|",
    ]
    layer_norm_union: set[int] = set()
    for name, maxima in channel_maxima().items():
        median = float(np.median(maxima))
        largest = ", ".join(f"{c}: {maxima[c]:.1f} ({maxima[c] / median:.1f}×)" for c in np.argsort(-maxima)[:4])
        if name.endswith("/merged"):
            # The attention output's input: no LayerNorm or GELU channel pattern, and the node scan finds it harmless.
            lines.append(f"| `{name}` | {median:.2f} | {largest} | – | not split |")
            continue
        gelu = name.endswith("/gelu")
        ratio = GELU_OUTLIER_RATIO if gelu else LAYER_NORM_OUTLIER_RATIO
        outliers = [int(c) for c in np.flatnonzero(maxima > ratio * median)]
        if gelu:
            kept = GELU_OUTLIERS.get(int(name.split("/")[0].removeprefix("layer")), [])
        else:
            layer_norm_union.update(outliers)
            kept = LAYER_NORM_OUTLIERS
        lines.append(f"| `{name}` | {median:.2f} | {largest} | {outliers} | {kept} |")
    lines.append(f"\nLayerNorm outputs, union of the outliers: {sorted(layer_norm_union)}")
    return "\n".join(lines)


def scan_nodes(texts: list[str], truth: np.ndarray) -> list[tuple[str, TruthReport]]:
    rows = []
    names = weight_matmuls(onnx.load(str(PLAIN_MODEL)))
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one.onnx"
        for name in names:
            dynamic_int8(PLAIN_MODEL, one, [name])
            rows.append((name, compare(one, texts, truth)))
            print(f"scan: {name}: min {rows[-1][1].min_cosine:.6f}", file=sys.stderr, flush=True)
    return rows


class Calibration(CalibrationDataReader):
    """Calibration questions one at a time, unpadded: the shapes the service runs most."""

    def __init__(self, texts: list[str]):
        self.items = iter([feeds([TOKENIZER.encode(t)]) for t in texts])

    def get_next(self):
        return next(self.items, None)


def static_qdq(source: Path, target: Path) -> None:
    """Per-channel int8 weights, uint8 activations with fixed MinMax-calibrated scales (QDQ)."""
    with quiet_quantizer():
        quantize_static(
            source, target, Calibration(split_questions().calibration), quant_format=QuantFormat.QDQ,
            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_quantize=weight_matmuls(onnx.load(str(source))), op_types_to_quantize=["MatMul"],
        )


def blockwise_int8(model: onnx.ModelProto, nodes: list[str], block: int) -> onnx.ModelProto:
    """`nodes` -> MatMulNBits: symmetric 8-bit weights per block of `block` along K, int8 compute
    (activations quantized per row and per block at run time)."""
    config = DefaultWeightOnlyQuantConfig(
        block_size=block, is_symmetric=True, accuracy_level=4, bits=8, quant_format=QuantFormat.QOperator,
        op_types_to_quantize=("MatMul",), quant_axes=(("MatMul", 0),),
    )
    with quiet_quantizer():
        quantizer = MatMulNBitsQuantizer(model, nodes_to_include=nodes, algo_config=config)
        quantizer.process()
    return quantizer.model.model


def blockwise_all(source: Path, target: Path, block: int) -> None:
    model = onnx.load(str(source))
    target.write_bytes(blockwise_int8(model, weight_matmuls(model), block).SerializeToString())


# The previous `make models` recipe: the 20 MatMuls the node scan finds harmless dynamic, the rest blockwise.
HARMLESS_MATMULS = [
    *(f"layer{i}/attention/{part}/matmul" for i in range(LAYERS) for part in ("query", "key", "attention_output")),
    "layer0/attention/value/matmul",
    "layer5/output/matmul",
]


def dynamic_and_blockwise(source: Path, target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "dynamic.onnx"
        dynamic_int8(source, staged, HARMLESS_MATMULS)
        model = onnx.load(str(staged))
        blockwise = [n for n in weight_matmuls(onnx.load(str(source))) if n not in HARMLESS_MATMULS]
        target.write_bytes(blockwise_int8(model, blockwise, 32).SerializeToString())


def without_padding_mask(source: Path, target: Path) -> None:
    quantize_with_splits(source, target, outlier_splits(), mask_padding=False)


def all_names() -> list[str]:
    return weight_matmuls(onnx.load(str(PLAIN_MODEL)))


# name -> how to build it from the fp32 graph. Ordered roughly by cost, cheapest first.
CANDIDATES: dict[str, Callable[[Path, Path], None]] = {
    "dynamic int8, all 36 MatMuls (the previous int8)": lambda s, t: dynamic_int8(s, t, all_names()),
    "static QDQ int8 (MinMax calibrated), all 36": static_qdq,
    "MatMulNBits 8-bit, block 32, all 36": lambda s, t: blockwise_all(s, t, 32),
    "mixed: dynamic on the 20 harmless + MatMulNBits-32 on 16 (the previous make models)": dynamic_and_blockwise,
    "dynamic int8, all 36, outlier channels split off in fp32, padding not masked": without_padding_mask,
    "dynamic int8, all 36, outlier channels split off in fp32 (make models)": quantize,
}


def speeds(models: dict[str, Path], rounds: int, seconds: float) -> dict[str, tuple[float, float]]:
    """Sentences/s (single, batch of 32) per model: the median over `rounds` interleaved rounds."""
    questions = [TOKENIZER.encode(t) for t in split_questions().evaluation[:1500]]
    singles = [feeds([e]) for e in questions]
    by_length = sorted(questions, key=lambda e: len(e.ids))
    batches = [feeds(by_length[i : i + 32]) for i in range(0, len(by_length), 32)]
    sessions = {name: session_for(path) for name, path in models.items()}
    for session in sessions.values():
        for item in singles[:20]:
            session.run(None, item)
    rates: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in models}

    def measure(session: ort.InferenceSession, items: list[dict], start: int) -> float:
        rows, runs, began = 0, 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            item = items[(start + runs) % len(items)]
            session.run(None, item)
            rows += item["input_ids"].shape[0]
            runs += 1
        return rows / (time.perf_counter() - began)

    for round_index in range(rounds):
        for name, session in sessions.items():
            rates[name][0].append(measure(session, singles, round_index * 97))
            rates[name][1].append(measure(session, batches, round_index * 7))
    return {name: (statistics.median(s), statistics.median(b)) for name, (s, b) in rates.items()}


def node_table(texts: list[str], truth: np.ndarray) -> str:
    lines = ["| MatMul | mean cosine | min cosine | worst input | in make models |", "|---|---|---|---|---|"]
    for name, result in scan_nodes(texts, truth):
        kind = "split" if name in outlier_splits() else "whole"
        lines.append(
            f"| `{name}` | {result.mean_cosine:.6f} | {result.min_cosine:.6f} | {result.worst_text[:24]!r} | {kind} |"
        )
    return "\n".join(lines)


def candidate_table(texts: list[str], truth: np.ndarray, rounds: int, seconds: float) -> str:
    lines = [
        "| recipe | reference mean / min | truth set mean / min (worst) | padded batch vs single | "
        "single sentences/s | batch-32 sentences/s |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        models = {"fp32": FP32_MODEL}
        for index, (name, build) in enumerate(CANDIDATES.items()):
            models[name] = Path(tmp) / f"candidate{index}.onnx"
            build(PLAIN_MODEL, models[name])
        figures = {}
        for name, path in models.items():
            reference = verify(path, DEFAULT_TOKENIZER, DEFAULT_REFERENCE)
            figures[name] = (reference, compare(path, texts, truth))
            print(f"scan: {name}: accuracy done", file=sys.stderr, flush=True)
        rates = speeds(models, rounds, seconds)
    single0, batch0 = rates["fp32"]
    for name, (reference, on_truth) in figures.items():
        single, batch = rates[name]
        lines.append(
            f"| {name} | {reference.mean_cosine:.5f} / {reference.min_cosine:.5f} | {on_truth.mean_cosine:.5f} / "
            f"{on_truth.min_cosine:.5f} ({on_truth.worst_text[:16]!r}) | {reference.batch_min_cosine:.5f} | "
            f"{single:.0f} ({single / single0:.2f}×) | {batch:.0f} ({batch / batch0:.2f}×) |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", default="all", choices=["channels", "nodes", "candidates", "all"])
    parser.add_argument("--rounds", type=int, default=8, help="interleaved speed rounds (median is reported)")
    parser.add_argument("--seconds-per-round", type=float, default=1.0, help="seconds per model and round")
    args = parser.parse_args()
    if not truth_is_current():
        build_truth()
    texts, truth = load_truth(DEFAULT_TRUTH)
    if args.what in ("channels", "all"):
        print(channel_table())
    if args.what in ("nodes", "all"):
        subset = list(range(0, EVALUATION_SIZE, NODE_SCAN_STRIDE)) + list(range(EVALUATION_SIZE, len(texts)))
        print(node_table([texts[i] for i in subset], truth[subset]))
    if args.what in ("candidates", "all"):
        print(candidate_table(texts, truth, args.rounds, args.seconds_per_round))
    print(f"\nONNX Runtime {ort.__version__}, {json.dumps(ort.get_available_providers())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
