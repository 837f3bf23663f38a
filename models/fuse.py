#!/usr/bin/env python3
"""Make the served fp32 graph: the plain graph of convert.py with ONNX Runtime's transformer fusions.

ONNX Runtime fuses the plain graph only partly when it loads it (SkipLayerNormalization, BiasGelu,
FusedMatMul); its Python optimizer, shipped in the pinned onnxruntime wheel, also recognises each
layer's self-attention (one Attention node: the Q, K and V products as one matrix product, the
scaled scores, the mask and the softmax) and the embeddings with their LayerNorm
(EmbedLayerNormalization). Same arithmetic in fp32, far fewer nodes (62 against 169, each counted
after ONNX Runtime's own load-time fusions), so a two-thread run of one sentence joins its threads far
less often:
docs/design-notes.md, "The served graph's fused attention", has the measurements.

Only the exact fusions are asked for (no GELU approximation), and the result must keep the graph's
inputs and outputs: sbert-host feeds both graphs the same tensors. The int8 model and scan.py start
from the plain graph, whose node names they rely on.

Usage: fuse.py PLAIN_MODEL OUT_MODEL
"""
import argparse
import logging
import sys
from pathlib import Path

import onnx
from onnxruntime.transformers.fusion_options import FusionOptions
from onnxruntime.transformers.optimizer import optimize_model

from convert import write_atomically
from quantize import LAYERS

CONTRIB_DOMAIN = "com.microsoft"
# What the fusions must have produced: a graph that differs is not the one that was measured.
EXPECTED_FUSIONS = {"Attention": LAYERS, "EmbedLayerNormalization": 1, "SkipLayerNormalization": 2 * LAYERS,
                    "BiasGelu": LAYERS}


class FuseError(Exception):
    """The optimizer did not fuse the graph as expected."""


def signature(model: onnx.ModelProto) -> list[tuple[str, int]]:
    """The graph's inputs and outputs with their element types."""
    return [(value.name, value.type.tensor_type.elem_type) for value in (*model.graph.input, *model.graph.output)]


def fuse(plain: Path, out: Path) -> None:
    # The optimizer warns that the producer is not a PyTorch exporter: the node pattern is what it matches.
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    options = FusionOptions("bert")
    options.enable_gelu_approximation = False
    # opt_level 0: only the Python fusions; ONNX Runtime applies its own when sbert-host loads the graph.
    optimized = optimize_model(str(plain), model_type="bert", optimization_options=options, opt_level=0)
    fused = {name: count for name, count in optimized.get_fused_operator_statistics().items() if count}
    if any(fused.get(name) != count for name, count in EXPECTED_FUSIONS.items()):
        raise FuseError(f"{plain}: expected the fusions {EXPECTED_FUSIONS}, the optimizer made {fused}")
    optimized.topological_sort()
    model = optimized.model
    # The fused nodes are ONNX Runtime's own operators, in its domain (version 1).
    model.opset_import.append(onnx.helper.make_opsetid(CONTRIB_DOMAIN, 1))
    if signature(model) != signature(onnx.load(str(plain), load_external_data=False)):
        raise FuseError(f"{plain}: fusing changed the graph's inputs or outputs")
    onnx.checker.check_model(model, full_check=True)
    write_atomically(out, model.SerializeToString(deterministic=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plain", type=Path, help="the plain graph convert.py wrote")
    parser.add_argument("out", type=Path, help="where the fused graph goes")
    args = parser.parse_args()
    try:
        fuse(args.plain, args.out)
    except FuseError as error:
        print(f"fuse: error: {error}", file=sys.stderr)
        return 1
    print(f"fuse: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
