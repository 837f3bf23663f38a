#!/usr/bin/env python3
"""The truth set that quantized models are judged on, beyond the 31 shared reference items.

Texts: EVALUATION_SIZE questions from ../shared/load/questions.json, chosen by the sha256 of the
text (so the choice does not depend on the file's order), plus HARD_CASES: the inputs dynamic
quantization is known to lose most on (a blank text that tokenizes to `[CLS] [SEP]`, single
words, non-Latin scripts, texts truncated at 256 tokens). The questions that come next in the
same order, disjoint from the evaluation set, are the calibration set for static quantization.

Truth: the fp32 graph's `sentence_embedding`, one text at a time (no padding). That graph
reproduces sentence-transformers to a cosine of 1 - 1e-12 (models/verify.py checks it), so it
stands in for sentence-transformers on texts the shared reference does not have.

The file lives beside the fp32 model (gitignored) and records the fp32 model's sha256; `make
models` rebuilds it when it is missing or was made from other fp32 bytes. It is not in
checksums.sha256: ONNX Runtime's float rounding differs between CPUs in the last bits.

Usage: truth.py [--out FILE]   (default models/all-minilm-l6-v2/truth.json)
"""
import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from verify import DEFAULT_TOKENIZER, cosines, embed, load_tokenizer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from fetch import sha256_of  # noqa: E402

QUESTIONS = ROOT.parent / "shared" / "load" / "questions.json"
FP32_MODEL = ROOT / "models" / "all-minilm-l6-v2" / "model.onnx"
DEFAULT_TRUTH = ROOT / "models" / "all-minilm-l6-v2" / "truth.json"
EVALUATION_SIZE = 1500
CALIBRATION_SIZE = 256
# Questions joined into texts far beyond the 256-token limit, as the long hard cases.
LONG_TEXTS = 3
QUESTIONS_PER_LONG_TEXT = 40

HARD_CASES = [
    "",
    " ",
    "I",
    "a",
    "?",
    "OK",
    "hi",
    "hello world",
    "Hello World!",
    "why",
    "42",
    "3.14159 2.71828 1.41421",
    "🙂",
    "👍🏽🎉",
    "مرحبا بالعالم",
    "ما هي عاصمة فرنسا؟",
    "東京は日本の首都です。",
    "こんにちは世界",
    "今天天气很好",
    "Привет, как дела?",
    "नमस्ते दुनिया",
    "안녕하세요",
    "Γειά σου Κόσμε",
    "שלום עולם",
    "naïve café résumé",
    "fn main() { println!(\"hi\"); }",
    "https://example.com/a/b?c=d&e=f",
    "UPPER CASE SENTENCE",
    "word " * 300,
]


@dataclass(frozen=True)
class Split:
    evaluation: list[str]
    calibration: list[str]


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def split_questions(path: Path = QUESTIONS) -> Split:
    """Distinct non-blank questions in sha256 order: the first EVALUATION_SIZE are evaluated on,
    the next CALIBRATION_SIZE calibrate. Long texts are made from the questions after those."""
    questions = sorted({q.strip() for q in json.loads(path.read_text()) if q.strip()}, key=text_digest)
    needed = EVALUATION_SIZE + CALIBRATION_SIZE + LONG_TEXTS * QUESTIONS_PER_LONG_TEXT
    if len(questions) < needed:
        raise ValueError(f"{path}: {len(questions)} distinct questions, the truth set needs {needed}")
    rest = questions[EVALUATION_SIZE + CALIBRATION_SIZE :]
    long_texts = [
        " ".join(rest[i * QUESTIONS_PER_LONG_TEXT : (i + 1) * QUESTIONS_PER_LONG_TEXT]) for i in range(LONG_TEXTS)
    ]
    return Split(
        evaluation=questions[:EVALUATION_SIZE] + HARD_CASES + long_texts,
        calibration=questions[EVALUATION_SIZE : EVALUATION_SIZE + CALIBRATION_SIZE],
    )


def session_for(model: Path, threads: int = 2) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def embed_each(model: Path, texts: list[str], tokenizer_path: Path = DEFAULT_TOKENIZER) -> np.ndarray:
    """One unpadded run per text, float64 [len(texts), 384]."""
    tokenizer = load_tokenizer(tokenizer_path)
    session = session_for(model)
    return np.concatenate([embed(session, [tokenizer.encode(text)]) for text in texts])


def build_truth(fp32_model: Path = FP32_MODEL, out: Path = DEFAULT_TRUTH) -> None:
    texts = split_questions().evaluation
    embeddings = embed_each(fp32_model, texts)
    truth = {
        "fp32_model_sha256": sha256_of(fp32_model),
        "items": [{"text": t, "embedding": [round(float(x), 8) for x in e]} for t, e in zip(texts, embeddings)],
    }
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(truth, ensure_ascii=False))
    partial.replace(out)


def truth_is_current(fp32_model: Path = FP32_MODEL, truth: Path = DEFAULT_TRUTH) -> bool:
    """True when `truth` was made from these fp32 bytes and holds today's selection of texts."""
    if not truth.exists():
        return False
    try:
        recorded = json.loads(truth.read_text())
        texts = [item["text"] for item in recorded["items"]]
        return recorded["fp32_model_sha256"] == sha256_of(fp32_model) and texts == split_questions().evaluation
    except (ValueError, KeyError, TypeError):
        return False


def load_truth(path: Path = DEFAULT_TRUTH) -> tuple[list[str], np.ndarray]:
    items = json.loads(path.read_text())["items"]
    return [i["text"] for i in items], np.array([i["embedding"] for i in items], dtype=np.float64)


@dataclass
class TruthReport:
    mean_cosine: float
    min_cosine: float
    worst_text: str
    items: int


def compare(model: Path, texts: list[str], truth: np.ndarray) -> TruthReport:
    """`model` on every text, one at a time, against the truth: cosine mean, minimum and worst text."""
    found = cosines(embed_each(model, texts), truth)
    return TruthReport(float(found.mean()), float(found.min()), texts[int(found.argmin())], len(texts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_TRUTH, help="where the truth JSON goes")
    args = parser.parse_args()
    build_truth(FP32_MODEL, args.out)
    print(f"truth: wrote {len(split_questions().evaluation)} items to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
