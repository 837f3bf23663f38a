"""A process's memory for `make bench`, counted three ways.

- RSS (and its peak): every resident page once per mapping of it. Each of sbert-host's resident
  instance slots maps the component's snapshot, so one physical page can count forty times.
- PSS: each page divided by the number of mappings of it, across all processes.
- charge: the distinct physical pages the process maps (private pages plus shared pages counted
  once), which is what a memory cgroup holding only this process would be charged for them. Read
  from /proc/PID/pagemap, whose frame numbers only a privileged reader sees; without them the
  charge is reported as unknown rather than guessed.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20
PRESENT = np.uint64(1 << 63)
FRAME_BITS = np.uint64((1 << 55) - 1)
# pagemap entries read per call (8 bytes each): 64 MiB of entries cover 32 GiB of address space.
CHUNK_ENTRIES = 8 << 20


@dataclass
class Memory:
    rss_mib: float
    peak_rss_mib: float
    pss_mib: float
    # None when the frame numbers cannot be read (not root).
    charge_mib: float | None
    # The highest PSS sampled during the scenario's load (PeakPss), when it was sampled.
    peak_pss_mib: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def resident_ranges(pid: int) -> list[tuple[int, int]]:
    """Address ranges of the mappings that have any resident page, from /proc/PID/smaps."""
    ranges, current = [], None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        header = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
        if header:
            current = (int(header.group(1), 16), int(header.group(2), 16))
        elif line.startswith("Rss:") and current and int(line.split()[1]) > 0:
            ranges.append(current)
    return ranges


def distinct_frames(pid: int) -> int | None:
    frames = []
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for start, end in resident_ranges(pid):
            first, last = start // PAGE, end // PAGE
            for chunk_start in range(first, last, CHUNK_ENTRIES):
                count = min(CHUNK_ENTRIES, last - chunk_start)
                pagemap.seek(chunk_start * 8)
                entries = np.frombuffer(pagemap.read(count * 8), dtype=np.uint64)
                present = entries[(entries & PRESENT) != 0] & FRAME_BITS
                if present.size and not present.any():
                    return None  # frame numbers hidden from an unprivileged reader
                frames.append(present)
    return int(np.unique(np.concatenate(frames)).size) if frames else 0


def pss_mib(pid: int) -> float:
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return int(re.search(r"^Pss:\s+(\d+)", rollup, re.M).group(1)) / 1024


class PeakPss:
    """Samples a process's PSS every `interval` seconds while in the `with` block: the kernel keeps
    a peak for RSS (VmHWM) but none for PSS."""

    def __init__(self, pid: int, interval: float = 0.5):
        self.pid, self.interval, self.peak_mib = pid, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while True:
            try:
                self.peak_mib = max(self.peak_mib, pss_mib(self.pid))
            except (OSError, AttributeError):
                return  # the process is gone
            if self._stop.wait(self.interval):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def read(pid: int) -> Memory:
    status = Path(f"/proc/{pid}/status").read_text()
    kib = {k: int(v.split()[0]) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(.*)$", status, re.M)}
    try:
        frames = distinct_frames(pid)
    except OSError:
        frames = None
    return Memory(
        rss_mib=kib["VmRSS"] / 1024,
        peak_rss_mib=kib["VmHWM"] / 1024,
        pss_mib=pss_mib(pid),
        charge_mib=None if frames is None else frames * PAGE / MIB,
    )
