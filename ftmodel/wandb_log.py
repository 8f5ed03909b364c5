"""Read and rewrite wandb's offline `.wandb` files: the framing, the records, staged artifact paths.

A `.wandb` file is a 7-byte header (`:W&B`, magic 0xBEE1, format version), then leveldb-log
framing (32 KiB blocks of CRC-checked chunks) around `wandb_internal.Record` protobuf messages.
The framing is read here; the records are decoded with wandb's own generated classes
(`wandb.proto.wandb_internal_pb2`, loaded lazily on the sync and bundle paths only: the console
lists offline runs without importing wandb). What this refuses by name rather than guessing:

- a header that is not wandb's, or a format version this code does not know (`UnknownVersion`): a
  wandb release that changes the framing must not have its first checksum read as a torn tail;
- a chunk that fails its checksum, or has an unknown type, with more data after it (corruption,
  or a format we do not know): only a bad or short chunk at the END of the file (nothing but
  zeros after it) is a torn tail — a run killed mid-write — and ends the records.

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
from collections.abc import Callable, Iterable
from pathlib import Path

from ftmodel.errors import FtmodelError
from ftmodel.i18n import t

HEADER = struct.Struct("<4sHB")  # ident, magic, version
IDENT, MAGIC = b":W&B", 0xBEE1
KNOWN_VERSIONS = frozenset({0})  # what wandb 0.31 writes
_BLOCK = 32768
_CHUNK = struct.Struct("<IHB")  # crc32 over type byte + data, data length, type
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


class LogFormatError(FtmodelError):
    """A file that is not a .wandb log, or one this code cannot read whole (the message says which)."""


class UnknownVersion(LogFormatError):
    """A .wandb file written in a format version this code does not know."""


class WandbMissing(LogFormatError):
    """Decoding the records needs wandb's generated classes, and wandb is not installed."""


# ---------------------------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------------------------


def check_header(header: bytes, path: Path | str) -> None:
    """Raise LogFormatError unless `header` is a .wandb header of a version we know."""
    if len(header) < HEADER.size:
        raise LogFormatError(
            t("{path} is not a .wandb file: {n} bytes, shorter than its header", path=path, n=len(header))
        )
    ident, magic, version = HEADER.unpack(header[: HEADER.size])
    if ident != IDENT or magic != MAGIC:
        raise LogFormatError(
            t("{path} is not a .wandb file (its header is {header!r})", path=path, header=header[: HEADER.size])
        )
    if version not in KNOWN_VERSIONS:
        raise UnknownVersion(
            t(
                "{path}: .wandb format version {version} is not one this ftmodel reads (it knows {known}, "
                "written by wandb 0.31): upgrade ftmodel; nothing was synced or bundled from this file",
                path=path,
                version=version,
                known=", ".join(map(str, sorted(KNOWN_VERSIONS))),
            )
        )


def read_log_records(path: Path) -> tuple[bytes, list[bytes]]:
    """Read a .wandb file: return (its header, the record payloads).

    A torn tail (a run killed mid-write, a copy of a file still being written) ends the records:
    what came before is intact. Anything else that does not read is a LogFormatError naming the
    byte where it happened."""
    data = Path(path).read_bytes()
    header = data[: HEADER.size]
    if len(data) < HEADER.size and HEADER.pack(IDENT, MAGIC, min(KNOWN_VERSIONS)).startswith(data):
        return HEADER.pack(IDENT, MAGIC, min(KNOWN_VERSIONS)), []  # the writer died before its header was out
    check_header(header, path)
    pos, records, pending = HEADER.size, [], None
    while pos + _CHUNK.size <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK.size:
            pos += left  # the writer pads a block's last few bytes with zeros
            continue
        crc, length, kind = _CHUNK.unpack_from(data, pos)
        if kind == 0 and length == 0:
            pos += left  # zero padding to the end of the block
            continue
        chunk = data[pos + _CHUNK.size : pos + _CHUNK.size + length]
        bad = None
        if len(chunk) < length:
            bad = t("a chunk of {length} bytes with {left} left in the file", length=length, left=len(chunk))
        elif zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            bad = t("a chunk whose checksum does not match")
        elif kind not in (_FULL, _FIRST, _MIDDLE, _LAST) or length > left - _CHUNK.size:
            bad = (
                t("a chunk of unknown type {kind}", kind=kind) if kind > _LAST else t("a chunk that overruns its block")
            )
        if bad:
            if _only_zeros(data, pos + _CHUNK.size + min(length, left - _CHUNK.size)):
                break  # a torn tail: the writer died here
            raise LogFormatError(
                t(
                    "{path}: {bad} at byte {pos}, with {after} bytes after it: the file is damaged or in a format "
                    "this ftmodel does not read; nothing was synced or bundled from it",
                    path=path,
                    bad=bad,
                    pos=pos,
                    after=len(data) - pos,
                )
            )
        if (kind in (_FULL, _FIRST)) != (pending is None):
            what = (
                t("a record cut off by the next one") if pending is not None else t("the rest of a record never begun")
            )
            raise LogFormatError(
                t(
                    "{path}: {what} at byte {pos}: the file is damaged; nothing was synced or bundled from it",
                    path=path,
                    what=what,
                    pos=pos,
                )
            )
        pos += _CHUNK.size + length
        if kind == _FULL:
            records.append(chunk)
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        else:
            records.append(pending + chunk)
            pending = None
    return header, records  # a record begun but not ended at the end of the file is a torn tail too


def _only_zeros(data: bytes, start: int) -> bool:
    return not data[start:].strip(b"\0")


def write_log_records(path: Path, header: bytes, records: Iterable[bytes]) -> None:
    """Write records with the same framing wandb uses (temp file + rename)."""
    check_header(header, path)
    out = bytearray(header)
    for rec in records:
        first = True
        while True:
            left = _BLOCK - len(out) % _BLOCK
            if left < _CHUNK.size:
                out += b"\0" * left
                continue
            room = left - _CHUNK.size
            chunk, rec = rec[:room], rec[room:]
            kind = (_FULL if not rec else _FIRST) if first else (_LAST if not rec else _MIDDLE)
            crc = zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF
            out += _CHUNK.pack(crc, len(chunk), kind) + chunk
            first = False
            if not rec:
                break
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    tmp.write_bytes(bytes(out))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Records, decoded with wandb's own classes
# ---------------------------------------------------------------------------------------------


def _pb():
    """wandb's generated protobuf module (imported on first use: it loads wandb, ~1 s)."""
    try:
        from wandb.proto import wandb_internal_pb2
    except ImportError as e:
        raise WandbMissing(
            t("reading a .wandb file needs wandb installed (pip install wandb): {reason}", reason=e)
        ) from None
    return wandb_internal_pb2


def decode(payload: bytes, where: str = "a record"):
    """One record as wandb's `Record` message; LogFormatError when it does not decode."""
    from google.protobuf.message import DecodeError

    record = _pb().Record()
    try:
        record.ParseFromString(payload)
    except DecodeError as e:
        raise LogFormatError(t("{where} does not decode as a wandb record ({reason})", where=where, reason=e)) from None
    return record


def record_type(payload: bytes) -> str | None:
    """What a record is (`history`, `artifact`, `exit`, `run`, …); None for a kind this wandb does not know."""
    return decode(payload).WhichOneof("record_type")


def history_step(record: bytes) -> int | None:
    """The step of a history record (None for other records)."""
    rec = decode(record)
    if rec.WhichOneof("record_type") != "history":
        return None
    return int(rec.history.step.num)


def staged_paths(records: Iterable[bytes]) -> list[str]:
    """Every artifact file path recorded in the records (manifest entries' local paths and
    manifest files), as recorded (absolute paths on the machine that logged them)."""
    out = []
    for payload in records:
        rec = decode(payload)
        if rec.WhichOneof("record_type") != "artifact":
            continue
        manifest = rec.artifact.manifest
        out += [entry.local_path for entry in manifest.contents if entry.local_path]
        if manifest.manifest_file_path:
            out.append(manifest.manifest_file_path)
    return out


def map_artifact_paths(record: bytes, mapping: Callable[[str], str]) -> bytes:
    """Rewrite an artifact record's staged file paths with `mapping(recorded) -> new path`; any
    other record (and an artifact record whose paths stay the same) is returned byte for byte."""
    rec = decode(record)
    if rec.WhichOneof("record_type") != "artifact":
        return record
    manifest = rec.artifact.manifest
    changed = False
    for entry in manifest.contents:
        if entry.local_path and (new := mapping(entry.local_path)) != entry.local_path:
            entry.local_path, changed = new, True
    if manifest.manifest_file_path and (new := mapping(manifest.manifest_file_path)) != manifest.manifest_file_path:
        manifest.manifest_file_path, changed = new, True
    return rec.SerializeToString() if changed else record


# ---------------------------------------------------------------------------------------------
# Where staged files are now
# ---------------------------------------------------------------------------------------------


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
