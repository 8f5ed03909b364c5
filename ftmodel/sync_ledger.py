"""Which offline wandb runs a workspace holds, and what our own sync ledger says of each.

The ledger (`<ws>/.wandb/sync_ledger.json`) is the only record of a run being synced: wandb's own
`.synced` marker is written even when uploads failed. An entry says never / synced (verified on
the server) / partial (all of the record is there, but the record is not the whole run) / failed,
why, where, and the `.wandb` file's size when it was synced (a run that grew is synced again).
Stdlib only: the console lists offline runs with this."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ftmodel import receipts
from ftmodel.i18n import t
from ftmodel.rundir import atomic_write_text, file_lock
from ftmodel.workspace import Workspace

LEDGER_FILE = "sync_ledger.json"
NEVER, SYNCED, FAILED = "never", "synced", "failed"
# Everything the offline record holds is on the server and verified, but the record is not the
# whole run (crashed, cut short, still running when bundled): shown as such, never as "verified".
PARTIAL = "partial"
DONE_STATES = (SYNCED, PARTIAL)


@dataclass
class OfflineRun:
    """One offline wandb run found in a workspace, with what the ledger says about it."""

    key: str  # the offline run dir relative to the workspace (the ledger key)
    path: Path  # <ws>/runs/<run-id>/wandb/offline-run-<date>-<wandb-id>
    run_id: str  # the ftmodel run id (<ws>/runs/<run-id>)
    wandb_id: str
    size: int  # bytes under the offline dir
    state: str = NEVER  # never | synced | partial | failed (from the ledger)
    reason: str = ""
    url: str | None = None
    entry: dict = field(default_factory=dict)
    # From a receipt carried back (ftmodel.receipts): what reached the server when this run was
    # synced on another machine; `remote_behind` when the run has grown since.
    remote: dict = field(default_factory=dict)

    @property
    def remote_behind(self) -> bool:
        size = self.remote.get("wandb_size")
        try:
            return size is not None and self.wandb_file.stat().st_size > size
        except OSError:
            return False

    @property
    def wandb_file(self) -> Path:
        return self.path / f"run-{self.wandb_id}.wandb"

    @property
    def run_dir(self) -> Path:
        return self.path.parent.parent


@dataclass
class Result:
    """What one sync (or dry run) did for one offline run."""

    key: str
    state: str  # synced | partial | failed | skipped | busy | interrupted | dry-run
    reason: str = ""
    url: str | None = None
    counts: dict = field(default_factory=dict)
    seconds: float = 0.0
    would_send: str = ""  # dry run: what would be sent


def as_workspace(ws: Workspace | str | Path) -> Workspace:
    return ws if isinstance(ws, Workspace) else Workspace(Path(ws))


def ledger_path(ws: Workspace | str | Path) -> Path:
    return as_workspace(ws).wandb_home / LEDGER_FILE


def read_ledger(ws: Workspace | str | Path) -> dict[str, dict]:
    """Return the ledger: {offline run key: entry}; empty when missing or unreadable."""
    try:
        data = json.loads(ledger_path(ws).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    runs = data.get("runs", {}) if isinstance(data, dict) else {}
    return runs if isinstance(runs, dict) else {}


def record(ws: Workspace, key: str, entry: dict) -> None:
    """Merge one run's entry into the ledger (locked read-modify-write, atomic replace)."""
    ws.wandb_home.mkdir(parents=True, exist_ok=True)
    with file_lock(ws.wandb_home / ".sync_ledger.lock"):
        runs = read_ledger(ws)
        runs[key] = {**runs.get(key, {}), **entry}
        text = json.dumps({"version": 1, "runs": runs}, indent=2, sort_keys=True, ensure_ascii=False)
        atomic_write_text(ledger_path(ws), text + "\n")


def record_failure(ws: Workspace, run: OfflineRun, reason: str, server: str | None, counts=None, url=None) -> None:
    """Record that syncing `run` failed, and why."""
    record(
        ws,
        run.key,
        {
            "state": FAILED,
            "reason": reason,
            "time": time.time(),
            "server": server,
            "counts": counts or {},
            "wandb_id": run.wandb_id,
            "url": url,
        },
    )


def grew_since(run: OfflineRun, entry: dict) -> bool:
    """Whether the offline record changed since it was synced (more rows carried in by a bundle)."""
    size = entry.get("wandb_size")
    try:
        return size is not None and run.wandb_file.stat().st_size != size
    except OSError:
        return False


def _dir_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def list_offline_runs(ws: Workspace | str | Path) -> list[OfflineRun]:
    """Every offline wandb run in the workspace (`<ws>/runs/<id>/wandb/offline-run-*`), oldest first."""
    ws = as_workspace(ws)
    ledger = read_ledger(ws)
    remote = receipts.reached(ws)
    out = []
    for path in sorted(ws.runs.glob("*/wandb/offline-run-*"), key=lambda p: p.name):
        files = sorted(path.glob("run-*.wandb"))
        if not path.is_dir() or not files:
            continue
        key = path.relative_to(ws.root).as_posix()
        entry = ledger.get(key, {})
        entry = entry if isinstance(entry, dict) else {}
        out.append(
            OfflineRun(
                key=key,
                path=path,
                run_id=path.parent.parent.name,
                wandb_id=files[0].name[len("run-") : -len(".wandb")],
                size=_dir_size(path),
                state=entry.get("state", NEVER),
                reason=entry.get("reason", ""),
                url=entry.get("url"),
                entry=entry,
                remote=remote.get(key, {}),
            )
        )
    return out


def select_runs(ws: Workspace | str | Path, names: Iterable[str] = ()) -> list[OfflineRun]:
    """Pick offline runs by ftmodel run id (or unique prefix), wandb id or key; all when `names` is empty."""
    runs = list_offline_runs(ws)
    names = list(names)
    if not names:
        return runs
    chosen: list[OfflineRun] = []
    for name in names:
        name = name.rstrip("/")
        exact = [r for r in runs if name in (r.run_id, r.wandb_id, r.key, r.path.name) or str(r.path) == name]
        matches = exact or [r for r in runs if r.run_id.startswith(name)]
        if not matches:
            raise LookupError(t("no offline wandb run matches {name!r}", name=name))
        if len({r.run_id for r in matches}) > 1:
            raise LookupError(
                t(
                    "{name!r} is ambiguous: {matches}",
                    name=name,
                    matches=", ".join(sorted({r.run_id for r in matches})[:5]),
                )
            )
        chosen += [r for r in matches if r not in chosen]
    return chosen


def status(ws: Workspace | str | Path) -> list[OfflineRun]:
    """Every offline run with its ledger state (never / synced / partial / failed and why), size and URL."""
    return list_offline_runs(ws)
