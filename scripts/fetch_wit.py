#!/usr/bin/env python3
"""Copy the third-party WIT packages we build against out of the crates that ship them.

WIT files are not committed: the component's guest bindings (wasi:nn) and the host's
bindings (fermyon:spin key-value, llm and variables) are generated from the copies that the
pinned `wasmtime-wasi-nn` and `spin-sdk` crates carry in cargo's registry. This script asks
`cargo metadata` where those crates live and copies their WIT into `wit/deps/`.

It also fills `wit/spin-check/deps/` for the portability check (tests/test_portability.py):
spin-sdk's whole `wit/` folder, whose package `spin:up` holds Spin's `platform` world (every
import a Spin host provides), with its dependencies, plus wasi:nn.
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "wit" / "deps"
CHECK_DEST = ROOT / "wit" / "spin-check" / "deps"

# crate name -> list of (path inside the crate, destination folder under wit/deps)
SOURCES = {
    "wasmtime-wasi-nn": [("wit/wasi-nn.wit", "wasi-nn")],
    "spin-sdk": [
        ("wit/deps/spin@2.0.0/key-value.wit", "spin"),
        ("wit/deps/spin@2.0.0/variables.wit", "spin"),
        ("wit/deps/spin@2.0.0/llm.wit", "spin"),
    ],
}

# The spin@2.0.0 package declares its name in world.wit, whose worlds pull in all of WASI;
# we take only the two interfaces we implement, so the package line is written separately.
PACKAGE_LINES = {"spin": "package fermyon:spin@2.0.0;\n"}


def crate_dirs() -> dict:
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    dirs = {}
    for pkg in json.loads(out)["packages"]:
        if pkg["name"] in SOURCES:
            dirs[pkg["name"]] = Path(pkg["manifest_path"]).parent
    return dirs


def spin_check_files(dirs: dict) -> dict:
    """wit/spin-check/deps/: Spin's world package (spin-sdk's `wit/world.wit`) and its deps, flattened
    beside it as a `deps/` folder expects, and wasi:nn for the world that adds it."""
    spin_wit = dirs["spin-sdk"] / "wit"
    files = {CHECK_DEST / "spin-up" / "world.wit": (spin_wit / "world.wit").read_bytes()}
    for source in (p for p in (spin_wit / "deps").rglob("*.wit") if p.is_file()):
        files[CHECK_DEST / source.relative_to(spin_wit / "deps")] = source.read_bytes()
    nn = dirs["wasmtime-wasi-nn"] / "wit" / "wasi-nn.wit"
    files[CHECK_DEST / "wasi-nn" / nn.name] = nn.read_bytes()
    return files


def main() -> int:
    dirs = crate_dirs()
    missing = sorted(set(SOURCES) - set(dirs))
    if missing:
        print(f"fetch_wit: crates not in the dependency graph: {', '.join(missing)}", file=sys.stderr)
        return 1
    wanted = {}
    for crate, items in SOURCES.items():
        for src, dst in items:
            source = dirs[crate] / src
            wanted[DEST / dst / source.name] = source.read_bytes()
    for dst, line in PACKAGE_LINES.items():
        wanted[DEST / dst / "package.wit"] = line.encode()
    wanted.update(spin_check_files(dirs))
    # Rewrite nothing that is already right: cargo builds running at the same time read these
    # files, and an unchanged mtime keeps them from rebuilding.
    for dest in (DEST, CHECK_DEST):
        for stale in (p for p in dest.rglob("*") if p.is_file() and p not in wanted) if dest.exists() else ():
            stale.unlink()
    changed = 0
    for path, content in wanted.items():
        if not path.exists() or path.read_bytes() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(content)
            tmp.replace(path)
            changed += 1
    if changed:
        print(f"fetch_wit: {changed} WIT file(s) updated in {DEST.relative_to(ROOT)} and {CHECK_DEST.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
