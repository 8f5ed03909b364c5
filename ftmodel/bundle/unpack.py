"""Verify a bundle against its manifest and import it into a workspace, nothing half-visible.

Every member is extracted into a temp dir inside the workspace (by index, never by its name) and
hashed; names must stay under `runs/<run>/` or `.wandb/data/` (no `..`, no absolute paths, no
links or devices); only when the whole manifest matches are files renamed into place. Stdlib only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import secrets
import shutil
import tarfile
import time
import zlib
from pathlib import Path

from ftmodel.bundle.pack import (
    _CHUNK,
    ALLOWED_ROOTS,
    FORMAT,
    HEADER_NAME,
    MANIFEST_NAME,
    VERSION,
    BundleError,
    ImportResult,
    _sha_prefix,
    _ws,
)
from ftmodel.i18n import t
from ftmodel.rundir import atomic_write_text, file_lock
from ftmodel.sync_guard import IMPORT_MARK, import_marks
from ftmodel.workspace import Workspace

# ---------------------------------------------------------------------------------------------
# Verifying and importing
# ---------------------------------------------------------------------------------------------


def _check_name(name: str) -> str:
    """A member name that stays inside the workspace's runs/ or .wandb/data/, or BundleError."""
    if name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":"):
        raise BundleError(t("{name}: absolute path in the bundle; refused", name=name))
    norm = posixpath.normpath(name)
    if norm != name.rstrip("/") or norm.startswith("..") or "/../" in f"/{norm}/":
        raise BundleError(t("{name}: path escapes the workspace; refused", name=name))
    if not norm.startswith(ALLOWED_ROOTS) or (norm.startswith("runs/") and norm.count("/") < 2):
        raise BundleError(t("{name}: not under runs/<run>/ or .wandb/data/; refused", name=name))
    return norm


def _read_json_member(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int = 64 << 20) -> tuple[dict, bytes]:
    if not member.isreg() or member.size > limit:
        raise BundleError(t("{name}: not a bundle {what}", name=member.name, what=member.name.rsplit("/", 1)[-1]))
    raw = tar.extractfile(member).read()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleError(t("{name}: unreadable ({reason})", name=member.name, reason=e)) from None
    if not isinstance(data, dict):
        raise BundleError(t("{name}: not a JSON object", name=member.name))
    return data, raw


def _check_version(data: dict, where: str) -> None:
    if data.get("format") != FORMAT:
        raise BundleError(
            t("{where}: not an ftmodel bundle (format {format!r})", where=where, format=data.get("format"))
        )
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError(t("{where}: unknown bundle format version {version!r}", where=where, version=version))
    if version > VERSION:
        raise BundleError(
            t(
                "bundle format version {version} is newer than this ftmodel reads (version {known}); "
                "upgrade ftmodel on this machine",
                version=version,
                known=VERSION,
            )
        )


def _extract_verified(bundle: Path, into: Path) -> tuple[dict, dict, dict[str, Path]]:
    """Extract every member into `into` (by index, never by name), hash it, and check the lot
    against the manifest. Return (header, manifest, {path: extracted file})."""
    header = manifest = None
    header_raw = b""
    got: dict[str, tuple[Path, int, str]] = {}
    current = t("the bundle's header")
    try:
        with tarfile.open(bundle, "r|*") as tar:
            for member in tar:
                current = member.name
                if header is None:
                    if member.name != HEADER_NAME:
                        raise BundleError(
                            t("{path}: not an ftmodel bundle (first member is {name!r})", path=bundle, name=member.name)
                        )
                    header, header_raw = _read_json_member(tar, member)
                    _check_version(header, str(bundle))
                    continue
                if member.name == MANIFEST_NAME:
                    manifest, _ = _read_json_member(tar, member)
                    continue
                if manifest is not None:
                    raise BundleError(t("{name}: found after the manifest; refused", name=member.name))
                name = _check_name(member.name)
                if member.issym() or member.islnk():
                    raise BundleError(
                        t(
                            "{name}: a link (to {target!r}) in the bundle; refused",
                            name=member.name,
                            target=member.linkname,
                        )
                    )
                if member.isdir():
                    continue
                if not member.isreg():
                    raise BundleError(t("{name}: not a regular file; refused", name=member.name))
                if name in got:
                    raise BundleError(t("{name}: appears twice in the bundle; refused", name=member.name))
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
        raise BundleError(
            t(
                "{path}: damaged or truncated while reading {current} ({reason}); nothing imported",
                path=bundle,
                current=current,
                reason=e,
            )
        ) from None
    if header is None:
        raise BundleError(t("{path}: empty or not a bundle", path=bundle))
    if manifest is None:
        raise BundleError(
            t(
                "{path}: truncated: its manifest is missing (last file read: {current}); nothing imported",
                path=bundle,
                current=current,
            )
        )
    _check_version(manifest, str(bundle))
    if manifest.get("header_sha256") != hashlib.sha256(header_raw).hexdigest():
        raise BundleError(t("{name}: does not match the manifest; refused", name=HEADER_NAME))
    listed = {}
    for item in manifest.get("files") or []:
        path = _check_name(str(item.get("path")))
        listed[path] = item
        if path not in got:
            raise BundleError(
                t("{path}: listed in the manifest but missing from the bundle; nothing imported", path=path)
            )
        _, size, sha = got[path]
        if size != item.get("size"):
            raise BundleError(
                t(
                    "{path}: {size} bytes in the bundle, the manifest says {listed}; nothing imported",
                    path=path,
                    size=size,
                    listed=item.get("size"),
                )
            )
        if sha != item.get("sha256"):
            raise BundleError(
                t("{path}: content does not match the manifest (SHA-256 differs); nothing imported", path=path)
            )
    extra = sorted(set(got) - set(listed))
    if extra:
        raise BundleError(t("{path}: in the bundle but not in its manifest; nothing imported", path=extra[0]))
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


def _apply(
    ws: Workspace, tmp: Path, header: dict, manifest: dict, extracted: dict[str, Path], started: float
) -> ImportResult:
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
            raise BundleError(
                t("{path}: exists in {root} and is not a plain file; nothing imported", path=path, root=ws.root)
            )
        if item["kind"] == "append":
            offset, total = int(item["offset"]), int(item["offset"]) + int(item["size"])
            if have == total and _sha_prefix(target, total) == item.get("total_sha256"):
                unchanged += 1
                continue
            if have is None or have < offset or _sha_prefix(target, offset) != item.get("base_sha256"):
                raise BundleError(
                    t(
                        "{path}: this bundle continues the file from byte {offset}, which this workspace does not "
                        "have ({why}); import the earlier bundle(s) first; nothing imported",
                        path=path,
                        offset=offset,
                        why=t("missing") if have is None else t("{n} bytes differ", n=have),
                    )
                )
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
    for _src, target in moves:
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
    mark = {
        "bundle_id": header.get("bundle_id"),
        "host": header.get("host"),
        "created": header.get("created"),
        "imported": time.time(),
    }
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
    return ImportResult(
        str(header.get("bundle_id")),
        sorted(header.get("runs") or {}),
        len(moves),
        unchanged,
        nbytes,
        round(time.monotonic() - started, 3),
        str(header.get("host") or ""),
        skipped,
    )


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
