#!/usr/bin/env python3
"""Fetch Swagger UI's browser bundle from the npm registry for the `/docs` page.

The component serves `/docs` from assets compiled into it (the machine it runs on may have no
internet, so no CDN). The files are third-party: fetched at build time, pinned by version and
sha256, never committed.
"""
import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

PACKAGE = "swagger-ui-dist"
VERSION = "5.35.0"
SHA256 = "1b8e891893404ea4c3558b6a87e2a3e494e7eedba41168c2ece5800a391a6ea6"
FILES = ("swagger-ui-bundle.js", "swagger-ui.css")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    parser.add_argument("--out", type=Path, default=Path("build/docs-assets"))
    args = parser.parse_args()

    if all((args.out / name).exists() for name in FILES) and (args.out / ".version").exists() \
            and (args.out / ".version").read_text() == f"{PACKAGE}@{VERSION}":
        return 0

    downloads = args.cache_dir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    tarball = downloads / f"{PACKAGE}-{VERSION}.tgz"
    if not tarball.exists() or sha256(tarball) != SHA256:
        subprocess.run(["npm", "pack", "--silent", f"{PACKAGE}@{VERSION}", "--pack-destination", str(downloads)],
                       check=True, stdout=subprocess.DEVNULL)
    actual = sha256(tarball)
    if actual != SHA256:
        tarball.unlink()
        print(f"error: {tarball} has sha256 {actual}, expected {SHA256} (download again: rerun make)", file=sys.stderr)
        return 1

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        for name in FILES:
            member = tar.extractfile(f"package/{name}")
            (args.out / name).write_bytes(member.read())
    (args.out / ".version").write_text(f"{PACKAGE}@{VERSION}")
    print(f"fetch_docs_assets: {PACKAGE}@{VERSION} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
