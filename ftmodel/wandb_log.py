"""Read and rewrite wandb's offline `.wandb` files without wandb: framing, records, staged artifact paths.

A `.wandb` file is leveldb-log framing (7-byte header, then 32 KiB blocks of CRC-checked chunks)
around `wandb_internal.Record` protobuf messages. We only need a few fields, so this walks the
protobuf wire format directly (stdlib only: the console imports `ftmodel.sync`, which uses this).

Why rewrite at all: the file records every staged artifact file by ABSOLUTE path (under
`<workspace>/.wandb/data/artifacts/staging/` where it was logged). A workspace moved to another
path or machine keeps the files but not the paths, so `wandb sync` would find nothing to upload.
`resolve_staged` maps a recorded path back into the workspace where it is now, and
`map_artifact_paths` rewrites the records of a staged copy to point there.
"""

from __future__ import annotations

import os
import posixpath
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path


class LogFormatError(Exception):
    """A file that is not a .wandb log."""


_HEADER_LEN, _BLOCK = 7, 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4

# Field numbers of wandb/proto/wandb_internal.proto (0.31) that we read or rewrite.
HISTORY, ARTIFACT, EXIT = 2, 8, 18  # Record.history, Record.artifact, Record.exit
_HISTORY_STEP, _STEP_NUM = 2, 1  # HistoryRecord.step -> HistoryStep.num
_ART_NAME, _ART_MANIFEST = 5, 12  # ArtifactRecord.name, ArtifactRecord.manifest
_MANIFEST_CONTENTS, _MANIFEST_FILE = 4, 5  # ArtifactManifest.contents, .manifest_file_path
_ENTRY_LOCAL_PATH = 6  # ArtifactManifestEntry.local_path
LOCAL_PATHS = (ARTIFACT, _ART_MANIFEST, _MANIFEST_CONTENTS, _ENTRY_LOCAL_PATH)
MANIFEST_FILES = (ARTIFACT, _ART_MANIFEST, _MANIFEST_FILE)


# ---------------------------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------------------------


def read_log_records(path: Path) -> tuple[bytes, list[bytes]]:
    """Read a .wandb file (leveldb-log framing): return (file header, record payloads).
    A torn tail (a run killed mid-write) ends the records: what came before is intact."""
    data = Path(path).read_bytes()
    header, pos, records, pending = data[:_HEADER_LEN], _HEADER_LEN, [], b""
    if header[:4] != b":W&B":
        raise LogFormatError(f"{path} is not a .wandb file")
    while pos + _HEADER_LEN <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER_LEN:
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER_LEN])
        if kind == 0 and length == 0:
            pos += left  # zero padding to the end of the block
            continue
        chunk = data[pos + _HEADER_LEN : pos + _HEADER_LEN + length]
        if len(chunk) < length or zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            break
        pos += _HEADER_LEN + length
        if kind == _FULL:
            records.append(chunk)
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            records.append(pending + chunk)
            pending = b""
    return header, records


def write_log_records(path: Path, header: bytes, records: Iterable[bytes]) -> None:
    """Write records with the same leveldb-log framing wandb uses (temp file + rename)."""
    out = bytearray(header)
    for rec in records:
        first = True
        while True:
            left = _BLOCK - len(out) % _BLOCK
            if left < _HEADER_LEN:
                out += b"\0" * left
                continue
            room = left - _HEADER_LEN
            chunk, rec = rec[:room], rec[room:]
            kind = (_FULL if not rec else _FIRST) if first else (_LAST if not rec else _MIDDLE)
            crc = zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF
            out += struct.pack("<IHB", crc, len(chunk), kind) + chunk
            first = False
            if not rec:
                break
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    tmp.write_bytes(bytes(out))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Protobuf wire format (no schema)
# ---------------------------------------------------------------------------------------------


def _varint(msg: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = msg[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def fields(msg: bytes) -> Iterator[tuple[int, int, int, object]]:
    """Yield (field number, wire type, start offset of the field, value) for each top-level field;
    the value is an int (varint/fixed) or the payload bytes (length-delimited)."""
    pos = 0
    while pos < len(msg):
        start = pos
        key, pos = _varint(msg, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(msg, pos)
        elif wire == 1:
            value, pos = int.from_bytes(msg[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = _varint(msg, pos)
            value, pos = msg[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = int.from_bytes(msg[pos : pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, start, value


def top_level_fields(msg: bytes) -> set[int]:
    """Field numbers present at the top level of a protobuf message."""
    return {number for number, _, _, _ in fields(msg)}


def values_at(msg: bytes, path: tuple[int, ...]) -> list:
    """Every value reached by following `path` (field numbers, outermost first) through nested messages."""
    out = []
    for number, wire, _, value in fields(msg):
        if number != path[0]:
            continue
        if len(path) == 1:
            out.append(value)
        elif wire == 2:
            out += values_at(value, path[1:])
    return out


def rewrite_at(msg: bytes, path: tuple[int, ...], fn: Callable[[bytes], bytes]) -> bytes:
    """Return `msg` with every length-delimited value reached by `path` replaced by `fn(value)`."""
    out, pos = bytearray(), 0
    changed = False
    for number, wire, start, value in fields(msg):
        end = _field_end(msg, start)
        if number == path[0] and wire == 2:
            new = fn(value) if len(path) == 1 else rewrite_at(value, path[1:], fn)
            if new != value:
                out += msg[pos:start] + _encode_varint(number << 3 | 2) + _encode_varint(len(new)) + new
                pos, changed = end, True
    if not changed:
        return msg
    return bytes(out + msg[pos:])


def _field_end(msg: bytes, start: int) -> int:
    key, pos = _varint(msg, start)
    wire = key & 7
    if wire == 0:
        return _varint(msg, pos)[1]
    if wire == 1:
        return pos + 8
    if wire == 5:
        return pos + 4
    length, pos = _varint(msg, pos)
    return pos + length


# ---------------------------------------------------------------------------------------------
# What a run's records say
# ---------------------------------------------------------------------------------------------


def history_step(record: bytes) -> int | None:
    """The step of a history record (None for other records)."""
    hist = values_at(record, (HISTORY,))
    if not hist:
        return None
    nums = values_at(hist[0], (_HISTORY_STEP, _STEP_NUM))
    return int(nums[0]) if nums else 0


def staged_paths(records: Iterable[bytes]) -> list[str]:
    """Every artifact file path recorded in the records (manifest entries' local paths and
    manifest files), as recorded (absolute paths on the machine that logged them)."""
    out = []
    for rec in records:
        if ARTIFACT in top_level_fields(rec):
            out += [
                v.decode("utf-8", "surrogateescape")
                for v in values_at(rec, LOCAL_PATHS) + values_at(rec, MANIFEST_FILES)
            ]
    return out


def resolve_staged(recorded: str, ws_root: Path, run_dir: Path | None = None) -> Path | None:
    """Where a recorded staged file is now: in this workspace's `.wandb/` (its path after `/.wandb/`),
    else in the run dir (its path after `/runs/<run-id>/`), else where it was recorded; None if gone."""
    text = recorded.replace("\\", "/")
    candidates = []
    for marker, base in (
        ("/.wandb/", Path(ws_root) / ".wandb"),
        (f"/runs/{run_dir.name}/" if run_dir else None, run_dir),
    ):
        if not marker or marker not in text:
            continue
        rel = posixpath.normpath(text[text.rfind(marker) + len(marker) :])
        if rel.startswith("../") or rel == ".." or rel.startswith("/"):
            continue  # never map outside the workspace
        candidates.append(base / rel)
    candidates.append(Path(recorded))
    for path in candidates:
        if path.is_file():
            return path
    return None


def relative_staged(recorded: str) -> str | None:
    """A recorded staged path relative to the workspace (`.wandb/data/...`), or None if not under `.wandb/`."""
    text = recorded.replace("\\", "/")
    if "/.wandb/" not in text:
        return None
    rel = posixpath.normpath(text[text.rfind("/.wandb/") + len("/.wandb/") :])
    if rel.startswith("..") or rel.startswith("/"):
        return None
    return ".wandb/" + rel


def map_artifact_paths(record: bytes, mapping: Callable[[str], str]) -> bytes:
    """Rewrite an artifact record's staged file paths with `mapping(recorded) -> new path`."""
    if ARTIFACT not in top_level_fields(record):
        return record

    def fn(value: bytes) -> bytes:
        return mapping(value.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")

    return rewrite_at(rewrite_at(record, LOCAL_PATHS, fn), MANIFEST_FILES, fn)
