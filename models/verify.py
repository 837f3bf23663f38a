#!/usr/bin/env python3
"""Check a model against the sentence-transformers reference embeddings.

Every reference item is tokenized like the service does (truncation at 256 tokens, no padding),
run through ONNX Runtime (the graph's `sentence_embedding` output is already mean-pooled over the
attention mask and L2-normalised, and must have unit length), then compared with the reference
by cosine similarity. The token count must equal the reference's `tokens`.
All items are also run once as one padded batch, which must agree with the one-by-one results
just as closely: that exercises the attention mask, which single unpadded inputs never do.

Exits non-zero when either minimum cosine is below --min-cosine, an output is not unit length or a
token count differs.

Usage: verify.py MODEL [--tokenizer FILE] [--reference FILE] [--min-cosine 0.9999]
"""
import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference" / "all-minilm-l6-v2.embeddings.json"
DEFAULT_TOKENIZER = ROOT / "models" / "all-minilm-l6-v2" / "tokenizer.json"
MAX_TOKENS = 256
# The models' only output: mean-pooled, L2-normalised float32 [batch, 384].
OUTPUT = "sentence_embedding"
# float32 normalisation leaves |norm - 1| around 1e-7; anything near 1e-5 means it is missing.
MAX_NORM_ERROR = 1e-5


@dataclass
class Report:
    mean_cosine: float
    min_cosine: float
    worst_text: str
    token_mismatches: list[str]
    batch_min_cosine: float
    # Largest |norm - 1| of any output row: the graph promises unit-length vectors.
    max_norm_error: float

    def passed(self, min_cosine: float) -> bool:
        return (
            min(self.min_cosine, self.batch_min_cosine) >= min_cosine
            and self.max_norm_error <= MAX_NORM_ERROR
            and not self.token_mismatches
        )


def load_tokenizer(path: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(path))
    # tokenizer.json ships truncation 128 + fixed padding 128; sentence-transformers uses 256, unpadded.
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS)
    return tokenizer


def embed(session: ort.InferenceSession, encodings: list[Encoding]) -> np.ndarray:
    """Pad to the longest encoding and run the model; its `sentence_embedding` output is already
    mean-pooled over the mask and L2-normalised (float32 [batch, 384]). Returned as float64."""
    seq = max(len(e.ids) for e in encodings)

    def padded(rows: list[list[int]]) -> np.ndarray:
        return np.array([row + [0] * (seq - len(row)) for row in rows], dtype=np.int64)

    (pooled,) = session.run(
        [OUTPUT],
        {
            "input_ids": padded([e.ids for e in encodings]),
            "attention_mask": padded([e.attention_mask for e in encodings]),
            "token_type_ids": padded([e.type_ids for e in encodings]),
        },
    )
    return pooled.astype(np.float64)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity, computed in float64 so float32 rounding of the norms
    does not show up as a first-order error."""
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def verify(model: Path, tokenizer_path: Path, reference_path: Path, threads: int = 2) -> Report:
    items = json.loads(reference_path.read_text())["items"]
    tokenizer = load_tokenizer(tokenizer_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    encodings = [tokenizer.encode(item["text"]) for item in items]
    token_mismatches = [
        f"{item['text'][:40]!r}: {len(e.ids)} tokens, reference {item['tokens']}"
        for item, e in zip(items, encodings)
        if len(e.ids) != item["tokens"]
    ]
    singles = np.concatenate([embed(session, [e]) for e in encodings])
    references = np.array([item["embedding"] for item in items], dtype=np.float64)
    to_reference = cosines(singles, references)
    batched = embed(session, encodings)
    return Report(
        mean_cosine=float(to_reference.mean()),
        min_cosine=float(to_reference.min()),
        worst_text=items[int(to_reference.argmin())]["text"],
        token_mismatches=token_mismatches,
        batch_min_cosine=float(cosines(batched, singles).min()),
        max_norm_error=float(np.abs(np.linalg.norm(np.concatenate([singles, batched]), axis=1) - 1).max()),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="an ONNX model with the service's inputs and output")
    parser.add_argument("--tokenizer", type=Path, default=DEFAULT_TOKENIZER, help="tokenizer.json")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="reference embeddings JSON")
    parser.add_argument("--min-cosine", type=float, default=0.9999, help="fail below this minimum cosine")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line (for make bench)")
    args = parser.parse_args()

    report = verify(args.model, args.tokenizer, args.reference)
    if args.json:
        print(json.dumps({"mean_cosine": report.mean_cosine, "min_cosine": report.min_cosine,
                          "batch_min_cosine": report.batch_min_cosine}))
        return 0
    print(
        f"verify: {args.model}: cosine to reference mean {report.mean_cosine:.7f}, "
        f"min {report.min_cosine:.7f} (1 - min = {1 - report.min_cosine:.1e}, worst {report.worst_text[:40]!r}); "
        f"padded batch vs single min {report.batch_min_cosine:.7f}; max |norm - 1| {report.max_norm_error:.1e}"
    )
    for mismatch in report.token_mismatches:
        print(f"verify: token count differs for {mismatch}")
    if not report.passed(args.min_cosine):
        print(
            f"verify: FAILED: {args.model}: both minimum cosines must be >= {args.min_cosine}, "
            f"every output must have unit length (within {MAX_NORM_ERROR}) and token counts must match"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
