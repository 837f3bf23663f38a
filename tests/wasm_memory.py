"""The linear memory a component's instance starts with: the largest declared minimum among its core modules'
memories (after pre-initialization, the size of the snapshot), so a test can give a request a memory limit
relative to what the component itself needs.

Hand-written: it reads one field (section headers and the memory section's limits, LEB128-encoded) of the
WebAssembly binary format, and no package the tests already use parses components.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

WASM_PAGE = 64 * 1024
CORE_MODULE_SECTION, NESTED_COMPONENT_SECTION = 1, 4  # in a component
MEMORY_SECTION = 5  # in a core module


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def _sections(data: bytes) -> Iterator[tuple[int, bytes]]:
    assert data[:4] == b"\0asm", "not a WebAssembly binary"
    pos = 8  # magic, then version and layer
    while pos < len(data):
        size, start = _leb128(data, pos + 1)
        yield data[pos], data[start:start + size]
        pos = start + size


def _memory_minimums(data: bytes) -> Iterator[int]:
    is_component = data[6:8] == b"\x01\x00"  # the layer field: 1 for components, 0 for core modules
    for section, payload in _sections(data):
        if is_component and section in (CORE_MODULE_SECTION, NESTED_COMPONENT_SECTION):
            yield from _memory_minimums(payload)
        elif not is_component and section == MEMORY_SECTION:
            count, pos = _leb128(payload, 0)
            for _ in range(count):
                flags = payload[pos]
                minimum, pos = _leb128(payload, pos + 1)
                if flags & 1:  # a maximum follows
                    _, pos = _leb128(payload, pos)
                yield minimum


def initial_memory_bytes(component: Path) -> int:
    minimums = list(_memory_minimums(component.read_bytes()))
    assert minimums, f"{component} declares no memory"
    return max(minimums) * WASM_PAGE
