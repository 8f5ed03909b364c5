"""Pack chosen runs of a workspace into a bundle; the bundle format, its ledger and its plan.

The format (see ftmodel.bundle for the whole story): a tar (gzip when the name ends in .gz/.tgz)
with `ftmodel-bundle/header.json` first, the files at their workspace-relative paths, and
`ftmodel-bundle/manifest.json` LAST (each file's size and SHA-256, so a run that is still writing
is packed in one pass: each file read once from one open descriptor, up to the size it had when
opened, hashed as it is written). Stdlib only. (Just over 400 lines: the format, the ledger of what earlier
bundles carried and the plan shown before packing read and write the same records, so they stay together.)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import socket
import tarfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ftmodel.errors import FtmodelError
from ftmodel.i18n import t
from ftmodel.rundir import atomic_write_text, file_lock, list_runs
from ftmodel.textio import human_size  # noqa: F401 (re-exported: the CLI and console print sizes)
from ftmodel.wandb_log import LogFormatError, read_log_records, relative_staged, staged_paths
from ftmodel.workspace import Workspace

FORMAT = "ftmodel-bundle"
VERSION = 1
HEADER_NAME = "ftmodel-bundle/header.json"
MANIFEST_NAME = "ftmodel-bundle/manifest.json"
LEDGER_FILE = "bundle_ledger.json"
MODEL_DIRS = ("checkpoints", "adapter", "merged")  # carried only with `with_models`
ALLOWED_ROOTS = ("runs/", ".wandb/data/")
_CHUNK = 1 << 20


class BundleError(FtmodelError):
    """A bundle that cannot be made or must not be imported (the message names the file or version)."""


@dataclass
class FileEntry:
    """One file a bundle carries (or would carry)."""

    path: str  # relative to the workspace, posix
    src: Path
    size: int  # bytes carried
    kind: str = "whole"  # whole | append
    offset: int = 0  # append: where the piece starts in the file
    base_sha256: str = ""  # append: hash of the file's first `offset` bytes
    model: bool = False


@dataclass
class RunCandidate:
    """A run that can be bundled, with what it would carry."""

    run_id: str
    stage: str
    state: str
    files: int
    bytes: int  # what would be carried (append pieces count only their new bytes)
    model_bytes: int  # checkpoints / adapters / merged models in the run dir (carried with_models)
    offline_runs: int


@dataclass
class BundlePlan:
    """What `make_bundle` would pack: runs, files and sizes, before anything is written."""

    runs: list[RunCandidate]
    entries: list[FileEntry]
    bytes: int
    model_bytes: int  # model files (left out unless with_models, then included in `bytes`)
    with_models: bool
    new_only: bool


@dataclass
class BundleInfo:
    """A bundle that was written."""

    path: Path
    bundle_id: str
    runs: list[str]
    files: int
    bytes_in: int  # file bytes carried
    bytes_out: int  # size of the bundle file
    seconds: float


@dataclass
class ImportResult:
    """What importing a bundle did."""

    bundle_id: str
    runs: list[str]
    written: int  # files created, replaced or appended to
    unchanged: int  # files already there with the same content (a second import)
    bytes: int
    seconds: float
    source_host: str = ""
    skipped: list[str] = field(default_factory=list)  # files kept because the workspace has a longer version


def _ws(ws: Workspace | str | Path) -> Workspace:
    return ws if isinstance(ws, Workspace) else Workspace(Path(ws))


# ---------------------------------------------------------------------------------------------
# The bundle ledger (on the box): what earlier bundles carried
# ---------------------------------------------------------------------------------------------


def ledger_path(ws: Workspace | str | Path) -> Path:
    return _ws(ws).wandb_home / LEDGER_FILE


def read_ledger(ws: Workspace | str | Path) -> dict:
    """{"files": {path: {"size", "sha256"}}, "bundles": [...]}; empty when missing or unreadable."""
    try:
        data = json.loads(ledger_path(ws).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    data.setdefault("files", {})
    data.setdefault("bundles", [])
    return data


def _sha_prefix(path: Path, size: int) -> str:
    h, left = hashlib.sha256(), size
    with open(path, "rb") as fh:
        while left > 0:
            chunk = fh.read(min(_CHUNK, left))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Choosing what to carry
# ---------------------------------------------------------------------------------------------


def _is_model_path(rel_in_run: str) -> bool:
    top = rel_in_run.split("/", 1)[0]
    return top in MODEL_DIRS or top.startswith("checkpoint-")


def _run_files(ws: Workspace, run_dir: Path) -> Iterable[tuple[str, Path, bool]]:
    """(workspace-relative path, file, is model) for every regular file of a run dir, then the
    staged artifact files its offline wandb runs point at. Links and lock/temp files are left out."""
    for root, dirs, files in os.walk(run_dir):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
        for name in sorted(files):
            path = Path(root) / name
            if path.is_symlink() or not path.is_file() or name.endswith((".lock", ".tmp")):
                continue
            rel_run = path.relative_to(run_dir).as_posix()
            yield path.relative_to(ws.root).as_posix(), path, _is_model_path(rel_run)
    for wandb_file in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        # A record that cannot be read would leave its artifact files out of the bundle without a
        # word: refuse it by name instead (a torn tail reads fine: what is whole is carried).
        try:
            _, records = read_log_records(wandb_file)
            recorded_paths = staged_paths(records)
        except OSError as e:
            raise BundleError(t("cannot read {path}: {reason}", path=wandb_file, reason=e.strerror or e)) from None
        except LogFormatError as e:
            raise BundleError(
                t("cannot tell which artifact files {run} needs: {reason}", run=wandb_file.parent.name, reason=e)
            ) from None
        for recorded in recorded_paths:
            rel = relative_staged(recorded)
            if rel and rel.startswith(".wandb/data/") and (ws.root / rel).is_file():
                yield rel, ws.root / rel, False


def plan_bundle(
    ws: Workspace | str | Path, runs: Iterable[str] = (), *, new_only: bool = False, with_models: bool = False
) -> BundlePlan:
    """Decide what a bundle of `runs` (run ids or unique prefixes; all when empty) would carry."""
    ws = _ws(ws)
    all_runs = list_runs(ws.root)
    names = list(runs)
    if names:
        chosen = []
        for name in names:
            name = name.rstrip("/")
            matches = [r for r in all_runs if r.id == name] or [r for r in all_runs if r.id.startswith(name)]
            if not matches:
                raise LookupError(t("no run {run!r} in {root}", run=name, root=ws.runs))
            if len(matches) > 1:
                raise LookupError(
                    t("run id {run!r} is ambiguous: {matches}", run=name, matches=", ".join(r.id for r in matches[:5]))
                )
            chosen += [m for m in matches if m not in chosen]
    else:
        chosen = all_runs
    carried = read_ledger(ws)["files"] if new_only else {}
    entries: list[FileEntry] = []
    seen: set[str] = set()
    candidates, total, model_total = [], 0, 0
    for run in chosen:
        state = run.read_state()
        count, size, model_size = 0, 0, 0
        for rel, path, is_model in _run_files(ws, run.path):
            if rel in seen:
                continue
            seen.add(rel)
            try:
                length = path.stat().st_size
            except OSError:
                continue
            if is_model:
                model_size += length
                if not with_models:
                    continue
            entry = _entry_for(rel, path, length, carried.get(rel), is_model)
            if entry is None:
                continue
            entries.append(entry)
            count += 1
            size += entry.size
        candidates.append(
            RunCandidate(
                run.id,
                str(state.get("stage", "?")),
                run.status(),
                count,
                size,
                model_size,
                len(list(run.path.glob("wandb/offline-run-*"))),
            )
        )
        total += size
        model_total += model_size
    return BundlePlan(candidates, entries, total, model_total, with_models, new_only)


def _entry_for(rel: str, path: Path, length: int, before: dict | None, is_model: bool) -> FileEntry | None:
    """Whole file, the piece it grew by since the last bundle, or None when nothing changed."""
    if not before:
        return FileEntry(rel, path, length, model=is_model)
    old_size, old_sha = int(before.get("size", -1)), before.get("sha256", "")
    if length == old_size and _sha_prefix(path, length) == old_sha:
        return None
    if length > old_size >= 0 and _sha_prefix(path, old_size) == old_sha:
        return FileEntry(rel, path, length - old_size, "append", old_size, old_sha, is_model)
    return FileEntry(rel, path, length, model=is_model)  # rewritten (state.json): carried whole


def list_candidates(
    ws: Workspace | str | Path, *, new_only: bool = False, with_models: bool = False
) -> list[RunCandidate]:
    """Every run of the workspace with what a bundle would carry of it (the console's pack list)."""
    return plan_bundle(ws, (), new_only=new_only, with_models=with_models).runs


# ---------------------------------------------------------------------------------------------
# Packing
# ---------------------------------------------------------------------------------------------


class _HashingReader:
    """Read at most `limit` bytes of a file object, hashing them (what tarfile copies into the bundle)."""

    def __init__(self, fh, limit: int):
        self._fh, self._left, self.sha = fh, limit, hashlib.sha256()
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._fh.read(n)
        self._left -= len(data)
        self.read_bytes += len(data)
        self.sha.update(data)
        return data


def _json_member(tar: tarfile.TarFile, name: str, data: dict) -> bytes:
    raw = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(raw), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(raw))
    return raw


def make_bundle(
    ws: Workspace | str | Path,
    out: str | Path,
    runs: Iterable[str] = (),
    *,
    new_only: bool = False,
    with_models: bool = False,
    plan: BundlePlan | None = None,
    progress: Callable[[str], None] | None = None,
) -> BundleInfo:
    """Pack runs into `out` (written to `out.part`, renamed when complete) and record in the bundle
    ledger what it carried. Raises BundleError when nothing is left to carry or a file cannot be read."""
    ws = _ws(ws)
    out = Path(out)
    started = time.monotonic()
    plan = plan or plan_bundle(ws, runs, new_only=new_only, with_models=with_models)
    if not plan.entries:
        raise BundleError(
            t("nothing new to carry: every file was in an earlier bundle")
            if new_only
            else t("no run files to carry in {path}", path=ws.runs)
        )
    say = progress or (lambda msg: None)
    bundle_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
    gz = out.name.endswith((".gz", ".tgz"))
    part = out.with_name(out.name + ".part")
    header = {
        "format": FORMAT,
        "version": VERSION,
        "bundle_id": bundle_id,
        "created": time.time(),
        "host": socket.gethostname(),
        "workspace": str(ws.root.resolve()),
        "new_only": new_only,
        "with_models": with_models,
        "runs": {c.run_id: {"stage": c.stage, "state": c.state} for c in plan.runs if c.files},
    }
    files, carried, total = [], {}, 0
    try:
        opened = (
            tarfile.open(part, "w:gz", compresslevel=6, format=tarfile.PAX_FORMAT)
            if gz
            else tarfile.open(part, "w", format=tarfile.PAX_FORMAT)
        )
        with opened as tar:
            header_raw = _json_member(tar, HEADER_NAME, header)
            for entry in plan.entries:
                with open(entry.src, "rb") as fh:
                    fh.seek(entry.offset)
                    reader = _HashingReader(fh, entry.size)
                    info = tarfile.TarInfo(entry.path)
                    info.size, info.mode = entry.size, 0o644
                    info.mtime = int(os.fstat(fh.fileno()).st_mtime)
                    try:
                        tar.addfile(info, reader)
                    except OSError as e:
                        raise BundleError(
                            t("{path}: shrank while being packed ({reason})", path=entry.path, reason=e)
                        ) from None
                sha = reader.sha.hexdigest()
                item = {"path": entry.path, "kind": entry.kind, "size": entry.size, "sha256": sha}
                if entry.kind == "append":
                    item.update(offset=entry.offset, base_sha256=entry.base_sha256)
                    full = _sha_prefix(entry.src, entry.offset + entry.size)
                    item["total_sha256"] = full
                else:
                    full = sha
                files.append(item)
                carried[entry.path] = {"size": entry.offset + entry.size, "sha256": full}
                total += entry.size
            say(f"packed {len(files)} files ({human_size(total)})")
            _json_member(
                tar,
                MANIFEST_NAME,
                {
                    "format": FORMAT,
                    "version": VERSION,
                    "bundle_id": bundle_id,
                    "header_sha256": hashlib.sha256(header_raw).hexdigest(),
                    "files": files,
                },
            )
        with open(part, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(part, out)
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        raise
    ws.wandb_home.mkdir(parents=True, exist_ok=True)
    with file_lock(ws.wandb_home / ".bundle_ledger.lock"):
        ledger = read_ledger(ws)
        ledger["files"].update(carried)
        ledger["bundles"].append(
            {
                "bundle_id": bundle_id,
                "file": str(out.resolve()),
                "created": header["created"],
                "runs": sorted(header["runs"]),
                "files": len(files),
                "bytes": total,
                "new_only": new_only,
            }
        )
        atomic_write_text(ledger_path(ws), json.dumps(ledger, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
    return BundleInfo(
        out,
        bundle_id,
        sorted(header["runs"]),
        len(files),
        total,
        out.stat().st_size,
        round(time.monotonic() - started, 3),
    )
