"""Issue 12: the cache fails under load and no request does. Redis is killed (SIGKILL) and restarted while
16 connections send repeated and unique questions and 8-input batches; the SQLite store's disk fills up
under the same load. Every request must still succeed (uncached where the store cannot help), `/health`
must stay 200 (a cache in trouble is "degraded", not "not ready"), and caching must resume by itself.
"""
from __future__ import annotations

import errno
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from conftest import CACHE_RECOVERY_S, Server, caching_resumes, encode_get, serving, unique_text
from load import Load, Outcome, statuses
from redis_server import RedisServer
from traffic import UniqueQuestions, multiple_encode, questions
from traffic import encode_get as encode_get_call

WORKERS = 16
BATCH = 8
REPEATED = 40
LOAD_BEFORE_FAULT_S = 2
FAULT_S = 3
# The SQLite store's own small disk. Once the filler is removed it must hold what the load's unique texts
# write (about 2 KB each, hundreds a second on a quiet machine) until the recovery check has run, or the
# load fills it again first.
TMPFS_SIZE = "64m"


def cache_load(srv: Server, label: str) -> Load:
    """Repeated questions (cached before the fault), unique ones, and batches mixing both."""
    unique = UniqueQuestions(label)
    repeated = questions()[:REPEATED]

    def next_call(worker: int, sequence: int):
        if worker % 4 == 3:
            return multiple_encode([repeated[sequence % REPEATED]] + unique.take(BATCH - 1), kind="batch")
        if sequence % 2:
            return encode_get_call(repeated[(worker + sequence) % REPEATED], kind="repeated")
        return encode_get_call(unique.next(), kind="unique")

    port = int(srv.base_url.rsplit(":", 1)[1])
    return Load("127.0.0.1", port, WORKERS, next_call)


def warm(srv: Server) -> None:
    for text in questions()[:REPEATED]:
        encode_get(srv, text)


def health(srv: Server) -> tuple[int, dict]:
    resp = srv.get("/health", auth=False)
    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    return resp.status_code, body




def assert_no_failures(outcomes: list[Outcome], srv: Server) -> None:
    failed = [o for o in outcomes if not o.ok]
    assert len(outcomes) >= 50, f"the load barely ran: {statuses(outcomes)}"
    assert not failed, f"{len(failed)} requests failed: {statuses(failed)}; first: {failed[0].body[:300]!r}\n" \
                       f"{srv.log()[-3000:]}"


def test_redis_killed_and_restarted_under_load(tmp_path):
    redis = RedisServer(tmp_path).start()
    (tmp_path / "runtime-config.toml").write_text(
        f'[key_value_store.default]\ntype = "redis"\nurl = "{redis.url}"\n')
    try:
        with serving(tmp_path) as srv:
            warm(srv)
            load = cache_load(srv, "redis kill").start()
            time.sleep(LOAD_BEFORE_FAULT_S)
            redis.kill()
            time.sleep(FAULT_S)
            during = health(srv)
            redis.start()
            recovered = caching_resumes(srv, "redis back")
            time.sleep(1)
            outcomes = load.stop()
            after = health(srv)
            assert_no_failures(outcomes, srv)
            assert recovered, f"no HIT within {CACHE_RECOVERY_S}s of Redis restarting:\n{srv.log()[-3000:]}"
            assert during[0] == 200 and during[1].get("cache") == "degraded", during
            assert after[0] == 200 and after[1].get("cache") == "ok", after
    finally:
        redis.stop()


@contextmanager
def small_tmpfs(path: Path, size: str):
    """A tmpfs of `size` mounted at `path` (needs root, as CI runs), unmounted afterwards."""
    path.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                           capture_output=True, text=True)
    assert mount.returncode == 0, (
        f"cannot mount a tmpfs for the disk-full test (run the tests as root, as CI does): {mount.stderr}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Writes a file into `directory` until its file system has no byte left; returns the file."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as out:
        for block in (65536, 4096, 512, 1):
            try:
                while True:
                    out.write(b"\0" * block)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
    return filler


def test_sqlite_disk_full_under_load(tmp_path):
    with small_tmpfs(tmp_path / "disk", TMPFS_SIZE) as disk:
        (tmp_path / "runtime-config.toml").write_text(
            f'[key_value_store.default]\ntype = "spin"\npath = "{disk / "kv.db"}"\n')
        with serving(tmp_path) as srv:
            warm(srv)
            load = cache_load(srv, "disk full").start()
            time.sleep(LOAD_BEFORE_FAULT_S)
            filler = fill(disk)
            full_from = time.monotonic()
            time.sleep(FAULT_S)
            during = health(srv)
            # The disk really refuses writes: a new text is not cached.
            text = unique_text("disk full")
            repeats = [encode_get(srv, text)[0] for _ in range(2)]
            os.remove(filler)
            recovered = caching_resumes(srv, "disk freed")
            outcomes = load.stop()
            assert_no_failures(outcomes, srv)
            hits_while_full = [o for o in outcomes if o.call.kind == "repeated" and o.sent > full_from
                               and o.headers.get("x-cache") == "HIT"]
            assert hits_while_full, "cached entries are still read while the disk is full"
            assert repeats == ["MISS", "MISS"], f"a write succeeded on a full disk: {repeats}"
            assert recovered, f"no HIT within {CACHE_RECOVERY_S}s of the disk having room:\n{srv.log()[-3000:]}"
            assert during[0] == 200, during
