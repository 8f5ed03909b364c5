"""Carry runs off an air-gapped box: pack chosen run dirs into a verified bundle, import it elsewhere.

A bundle is a tar file (gzip-compressed when its name ends in .gz/.tgz) holding, in order:
- `ftmodel-bundle/header.json`: format name and version, when and where it was made, the runs;
- the files, at their paths relative to the workspace: `runs/<id>/...` (state.json, config.toml,
  metrics.jsonl, stage.log, reports, the offline wandb run) and the staged artifact files under
  `.wandb/data/...` that the offline runs point at (sync resolves them there, wherever the
  workspace now lives: see ftmodel.wandb_log.resolve_staged);
- `ftmodel-bundle/manifest.json` LAST: every file's size and SHA-256. It comes last so a run that
  is still writing is packed in one pass: each file is read once from one open descriptor, up to the
  size it had when opened, and hashed as it is written.

A file is carried `whole`, or, in a `--new` bundle, as an `append` piece: the bytes a file grew by
since the last bundle (metrics.jsonl rows, .wandb records, log lines of a running run), with the
hash of the prefix it continues. The box keeps a bundle ledger (`.wandb/bundle_ledger.json`) of
what each bundle carried; the receiving side appends a piece only onto exactly that prefix, so rows
arrive once however often a bundle is imported.

Import verifies everything before anything becomes visible: each member is extracted into a temp
dir inside the workspace and hashed; names must stay under `runs/` or `.wandb/data/` (no `..`, no
absolute paths, no links or devices); only when the manifest matches are files renamed into
place. Stdlib only (the console imports this).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import secrets
import shutil
import socket
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ftmodel.rundir import atomic_write_text, file_lock, list_runs
from ftmodel.sync_guard import IMPORT_MARK, import_marks
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


class BundleError(Exception):
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


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


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
        try:
            _, records = read_log_records(wandb_file)
        except (OSError, LogFormatError):
            continue
        for recorded in staged_paths(records):
            rel = relative_staged(recorded)
            if rel and rel.startswith(".wandb/data/") and (ws.root / rel).is_file():
                yield rel, ws.root / rel, False


def plan_bundle(ws: Workspace | str | Path, runs: Iterable[str] = (), *, new_only: bool = False,
                with_models: bool = False) -> BundlePlan:
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
                raise LookupError(f"no run {name!r} in {ws.runs}")
            if len(matches) > 1:
                raise LookupError(f"run id {name!r} is ambiguous: {', '.join(r.id for r in matches[:5])}")
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
        candidates.append(RunCandidate(run.id, str(state.get("stage", "?")), run.status(), count, size, model_size,
                                       len(list(run.path.glob("wandb/offline-run-*")))))
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


def list_candidates(ws: Workspace | str | Path, *, new_only: bool = False, with_models: bool = False) -> list[RunCandidate]:
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


def make_bundle(ws: Workspace | str | Path, out: str | Path, runs: Iterable[str] = (), *, new_only: bool = False,
                with_models: bool = False, plan: BundlePlan | None = None,
                progress: Callable[[str], None] | None = None) -> BundleInfo:
    """Pack runs into `out` (written to `out.part`, renamed when complete) and record in the bundle
    ledger what it carried. Raises BundleError when nothing is left to carry or a file cannot be read."""
    ws = _ws(ws)
    out = Path(out)
    started = time.monotonic()
    plan = plan or plan_bundle(ws, runs, new_only=new_only, with_models=with_models)
    if not plan.entries:
        raise BundleError("nothing new to carry: every file was in an earlier bundle" if new_only
                          else f"no run files to carry in {ws.runs}")
    say = progress or (lambda msg: None)
    bundle_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
    gz = out.name.endswith((".gz", ".tgz"))
    part = out.with_name(out.name + ".part")
    header = {"format": FORMAT, "version": VERSION, "bundle_id": bundle_id, "created": time.time(),
              "host": socket.gethostname(), "workspace": str(ws.root.resolve()), "new_only": new_only,
              "with_models": with_models,
              "runs": {c.run_id: {"stage": c.stage, "state": c.state} for c in plan.runs if c.files}}
    files, carried, total = [], {}, 0
    try:
        opened = (tarfile.open(part, "w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) if gz
                  else tarfile.open(part, "w", format=tarfile.PAX_FORMAT))
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
                        raise BundleError(f"{entry.path}: shrank while being packed ({e})") from None
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
            _json_member(tar, MANIFEST_NAME, {"format": FORMAT, "version": VERSION, "bundle_id": bundle_id,
                                              "header_sha256": hashlib.sha256(header_raw).hexdigest(),
                                              "files": files})
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
        ledger["bundles"].append({"bundle_id": bundle_id, "file": str(out.resolve()), "created": header["created"],
                                  "runs": sorted(header["runs"]), "files": len(files), "bytes": total,
                                  "new_only": new_only})
        atomic_write_text(ledger_path(ws), json.dumps(ledger, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
    return BundleInfo(out, bundle_id, sorted(header["runs"]), len(files), total, out.stat().st_size,
                      round(time.monotonic() - started, 3))


# ---------------------------------------------------------------------------------------------
# Verifying and importing
# ---------------------------------------------------------------------------------------------

def _check_name(name: str) -> str:
    """A member name that stays inside the workspace's runs/ or .wandb/data/, or BundleError."""
    if name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":"):
        raise BundleError(f"{name}: absolute path in the bundle; refused")
    norm = posixpath.normpath(name)
    if norm != name.rstrip("/") or norm.startswith("..") or "/../" in f"/{norm}/":
        raise BundleError(f"{name}: path escapes the workspace; refused")
    if not norm.startswith(ALLOWED_ROOTS) or (norm.startswith("runs/") and norm.count("/") < 2):
        raise BundleError(f"{name}: not under runs/<run>/ or .wandb/data/; refused")
    return norm


def _read_json_member(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int = 64 << 20) -> tuple[dict, bytes]:
    if not member.isreg() or member.size > limit:
        raise BundleError(f"{member.name}: not a bundle {member.name.rsplit('/', 1)[-1]}")
    raw = tar.extractfile(member).read()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleError(f"{member.name}: unreadable ({e})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{member.name}: not a JSON object")
    return data, raw


def _check_version(data: dict, where: str) -> None:
    if data.get("format") != FORMAT:
        raise BundleError(f"{where}: not an ftmodel bundle (format {data.get('format')!r})")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError(f"{where}: unknown bundle format version {version!r}")
    if version > VERSION:
        raise BundleError(f"bundle format version {version} is newer than this ftmodel reads (version {VERSION}); "
                          f"upgrade ftmodel on this machine")


def _extract_verified(bundle: Path, into: Path) -> tuple[dict, dict, dict[str, Path]]:
    """Extract every member into `into` (by index, never by name), hash it, and check the lot
    against the manifest. Return (header, manifest, {path: extracted file})."""
    header = manifest = None
    header_raw = b""
    got: dict[str, tuple[Path, int, str]] = {}
    current = "the bundle's header"
    try:
        with tarfile.open(bundle, "r|*") as tar:
            for member in tar:
                current = member.name
                if header is None:
                    if member.name != HEADER_NAME:
                        raise BundleError(f"{bundle}: not an ftmodel bundle (first member is {member.name!r})")
                    header, header_raw = _read_json_member(tar, member)
                    _check_version(header, str(bundle))
                    continue
                if member.name == MANIFEST_NAME:
                    manifest, _ = _read_json_member(tar, member)
                    continue
                if manifest is not None:
                    raise BundleError(f"{member.name}: found after the manifest; refused")
                name = _check_name(member.name)
                if member.issym() or member.islnk():
                    raise BundleError(f"{member.name}: a link (to {member.linkname!r}) in the bundle; refused")
                if member.isdir():
                    continue
                if not member.isreg():
                    raise BundleError(f"{member.name}: not a regular file; refused")
                if name in got:
                    raise BundleError(f"{member.name}: appears twice in the bundle; refused")
                dest = into / f"{len(got):06d}"
                h = hashlib.sha256()
                src = tar.extractfile(member)
                with open(dest, "wb") as fh:
                    while chunk := src.read(_CHUNK):
                        h.update(chunk)
                        fh.write(chunk)
                got[name] = (dest, dest.stat().st_size, h.hexdigest())
    except BundleError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise BundleError(f"{bundle}: damaged or truncated while reading {current} ({e}); nothing imported") from None
    if header is None:
        raise BundleError(f"{bundle}: empty or not a bundle")
    if manifest is None:
        raise BundleError(f"{bundle}: truncated: its manifest is missing (last file read: {current}); nothing imported")
    _check_version(manifest, str(bundle))
    if manifest.get("header_sha256") != hashlib.sha256(header_raw).hexdigest():
        raise BundleError(f"{HEADER_NAME}: does not match the manifest; refused")
    listed = {}
    for item in manifest.get("files") or []:
        path = _check_name(str(item.get("path")))
        listed[path] = item
        if path not in got:
            raise BundleError(f"{path}: listed in the manifest but missing from the bundle; nothing imported")
        _, size, sha = got[path]
        if size != item.get("size"):
            raise BundleError(f"{path}: {size} bytes in the bundle, the manifest says {item.get('size')}; nothing imported")
        if sha != item.get("sha256"):
            raise BundleError(f"{path}: content does not match the manifest (SHA-256 differs); nothing imported")
    extra = sorted(set(got) - set(listed))
    if extra:
        raise BundleError(f"{extra[0]}: in the bundle but not in its manifest; nothing imported")
    return header, manifest, {p: got[p][0] for p in listed}


@contextlib.contextmanager
def _import_dir(ws: Workspace):
    """A temp dir inside the workspace for one import, under the workspace's import lock; temp dirs
    an earlier import left behind (killed mid-way) are removed first."""
    ws.wandb_home.mkdir(parents=True, exist_ok=True)
    with file_lock(ws.wandb_home / ".import.lock"):
        for stale in ws.wandb_home.glob("import-*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = ws.wandb_home / f"import-{secrets.token_hex(4)}.tmp"
        tmp.mkdir()
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def verify_bundle(bundle: str | Path, ws: Workspace | str | Path) -> dict:
    """Check a bundle against its manifest (in a temp dir inside the workspace, removed after);
    return its header. Raises BundleError naming the file that does not match."""
    with _import_dir(_ws(ws)) as tmp:
        header, _, _ = _extract_verified(Path(bundle), tmp)
        return header


def import_bundle(bundle: str | Path, ws: Workspace | str | Path) -> ImportResult:
    """Verify a bundle, then move its files into the workspace: new run dirs appear whole by one
    rename, append pieces extend exactly the prefix they continue, files already there are left
    alone. Importing the same bundle twice changes nothing. Raises BundleError (nothing changed)."""
    ws = _ws(ws)
    started = time.monotonic()
    with _import_dir(ws) as tmp:
        header, manifest, extracted = _extract_verified(Path(bundle), tmp)
        ws.runs.mkdir(parents=True, exist_ok=True)
        return _apply(ws, tmp, header, manifest, extracted, started)


def _apply(ws: Workspace, tmp: Path, header: dict, manifest: dict, extracted: dict[str, Path],
           started: float) -> ImportResult:
    """Plan every change first (so a piece that cannot apply refuses the whole import), then make them."""
    moves: list[tuple[Path, Path]] = []  # (ready file, target)
    unchanged, skipped, nbytes = 0, [], 0
    created = float(header.get("created") or 0)
    # A run already holding files from a later bundle keeps them: an old bundle imported again must
    # not turn a finished state.json back into "running".
    newer: dict[str, bool] = {}
    for run_id in header.get("runs") or {}:
        marks = import_marks(ws.runs / run_id) if (ws.runs / run_id).is_dir() else []
        newer[run_id] = any(float(m.get("created") or 0) > created for m in marks)
    for item in manifest["files"]:
        path = _check_name(item["path"])
        target, src = ws.root / path, extracted[path]
        have = target.stat().st_size if target.is_file() else None
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise BundleError(f"{path}: exists in {ws.root} and is not a plain file; nothing imported")
        if item["kind"] == "append":
            offset, total = int(item["offset"]), int(item["offset"]) + int(item["size"])
            if have == total and _sha_prefix(target, total) == item.get("total_sha256"):
                unchanged += 1
                continue
            if have is None or have < offset or _sha_prefix(target, offset) != item.get("base_sha256"):
                raise BundleError(f"{path}: this bundle continues the file from byte {offset}, which this workspace "
                                  f"does not have ({'missing' if have is None else f'{have} bytes differ'}); "
                                  f"import the earlier bundle(s) first; nothing imported")
            if have > total:  # already holds more than this piece brings (a later bundle came first)
                skipped.append(path)
                continue
            joined = src.with_name(src.name + ".joined")
            with open(joined, "wb") as out, open(target, "rb") as old:
                shutil.copyfileobj(_Limited(old, offset), out, _CHUNK)
                with open(src, "rb") as piece:
                    shutil.copyfileobj(piece, out, _CHUNK)
            moves.append((joined, target))
        else:
            if have is not None:
                if have == item["size"] and _sha_prefix(target, have) == item["sha256"]:
                    unchanged += 1
                    continue
                if have > item["size"] and _sha_prefix(target, item["size"]) == item["sha256"]:
                    skipped.append(path)  # the workspace's copy is this one plus more: keep it
                    continue
                if path.startswith("runs/") and newer.get(path.split("/")[1]):
                    skipped.append(path)  # a later bundle brought this file already
                    continue
            moves.append((src, target))
        nbytes += int(item["size"])
    # Staged artifact files first, so an offline run never appears without them; then whole new run
    # dirs by one rename each (nothing half-visible), then single files into existing run dirs.
    new_runs: dict[str, Path] = {}
    for src, target in moves:
        rel = target.relative_to(ws.root).as_posix()
        if rel.startswith("runs/"):
            run_id = rel.split("/")[1]
            if not (ws.runs / run_id).exists():
                new_runs.setdefault(run_id, tmp / "new-runs" / run_id)
    ordered = sorted(moves, key=lambda m: not m[1].relative_to(ws.root).as_posix().startswith(".wandb/"))
    for src, target in ordered:
        rel = target.relative_to(ws.root).as_posix()
        run_id = rel.split("/")[1] if rel.startswith("runs/") else None
        dest = new_runs[run_id] / Path(*rel.split("/")[2:]) if run_id in new_runs else target
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
    mark = {"bundle_id": header.get("bundle_id"), "host": header.get("host"), "created": header.get("created"),
            "imported": time.time()}
    for run_id, info in (header.get("runs") or {}).items():
        target_dir = new_runs.get(run_id) or ws.runs / run_id
        if not target_dir.is_dir():
            continue
        marks = import_marks(target_dir)
        if not any(m.get("bundle_id") == mark["bundle_id"] for m in marks):
            marks.append({**mark, "state_when_bundled": (info or {}).get("state")})
            atomic_write_text(target_dir / IMPORT_MARK, json.dumps(marks, ensure_ascii=False, indent=1) + "\n")
    for run_id, ready in new_runs.items():
        os.rename(ready, ws.runs / run_id)
    return ImportResult(str(header.get("bundle_id")), sorted(header.get("runs") or {}), len(moves), unchanged, nbytes,
                        round(time.monotonic() - started, 3), str(header.get("host") or ""), skipped)


class _Limited:
    """The first `n` bytes of a file object."""

    def __init__(self, fh, n: int):
        self._fh, self._left = fh, n

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        data = self._fh.read(size)
        self._left -= len(data)
        return data


def is_bundle(path: str | Path) -> bool:
    """Whether `path` is a file that looks like a bundle (a tar whose first member is our header)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with tarfile.open(path, "r|*") as tar:
            first = tar.next()
            return first is not None and first.name == HEADER_NAME
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        return False
