"""Sync offline wandb runs to a W&B server, verify them there, and keep our own sync ledger.

Why not just `wandb sync`: in wandb 0.31 it exits 0 and writes its `.synced` marker even when the
file-stream, artifact or run-file uploads failed, and a run that is partly on the server is re-sent
from the server's `historyLineCount` with ALL local rows (duplicating the first ones). So:

- the real `wandb sync` CLI does the uploading (in a subprocess, bounded retries and timeouts, the
  workspace's WANDB_DATA_DIR/CACHE/CONFIG env), always from a staged copy of the offline run under
  `<ws>/.wandb/sync-stage/`, so the offline run itself is never modified;
- when the server already holds K history rows of the run, the staged copy leaves out the first K
  history records, so the client sends exactly the missing rows at offset K;
- afterwards our own GraphQL query checks the server: the run exists, its history line count and
  last step, summary and config match the local record (read with `wandb leet inspect --json`),
  every logged artifact is COMMITTED;
- only then `<ws>/.wandb/sync_ledger.json` records the run as synced. wandb's `.synced` marker is
  never trusted; a stale one is removed before a retry;
- the staged copy points every staged artifact file at where it is NOW (the `.wandb` file records
  absolute paths from where it was logged): a workspace moved or copied anywhere syncs whole;
- a run whose record is not the whole run (no exit record: crashed, cut short, still running when
  bundled; or metrics.jsonl rows the record lacks) is recorded `partial` with the reason, never
  "verified", and synced again when its record grows (ftmodel.sync_guard);
- one syncer per run (a lock; a second one is told the holder's pid); Ctrl-C stops the client's
  process group and is recorded; any error of one run is that run's failure in the ledger.

Carrying runs off an air-gapped box is ftmodel.bundle; receipts of what arrived, ftmodel.receipts;
the `.wandb` format, ftmodel.wandb_log; the server, its key and our GraphQL client,
ftmodel.wandb_server; the local record and its comparison with the server, ftmodel.sync_verify.
This file is the ledger, the staging copy and the sync loop. (A little over 400 lines: the sync
loop's per-run steps read best together.)

Stdlib only at import time (the console imports this); wandb itself only runs as a subprocess.
The API key comes from `WANDB_API_KEY` or wandb's own login (`~/.netrc` / `$NETRC`, or `api_key`
in the wandb settings file); it is never written to the ledger, a log or a printed command.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ftmodel import receipts
from ftmodel.errors import ServerError, SyncError
from ftmodel.rundir import atomic_write_text, file_lock
from ftmodel.sync_guard import RunBusy, incomplete_reason, run_lock, still_running_here
from ftmodel.sync_verify import LocalRecord as LocalRecord  # re-exported: part of sync's API
from ftmodel.sync_verify import (
    _describe,
    _json_field,
    compare,
    read_local,
    wandb_command,
)
from ftmodel.sync_verify import wandb_exe as wandb_exe
from ftmodel.tracking import wandb_environment
from ftmodel.wandb_log import (
    HISTORY,
    LogFormatError,
    map_artifact_paths,
    read_log_records,
    resolve_staged,
    top_level_fields,
    write_log_records,
)
from ftmodel.wandb_server import (
    QUERY_TIMEOUT,
    Server,
    app_url,
    resolve_api_key,
    resolve_base_url,
)
from ftmodel.workspace import Workspace

LEDGER_FILE = "sync_ledger.json"
STAGE_DIR = "sync-stage"
NEVER, SYNCED, FAILED = "never", "synced", "failed"
# Everything the offline record holds is on the server and verified, but the record is not the
# whole run (crashed, cut short, still running when bundled): shown as such, never as "verified".
PARTIAL = "partial"
DONE_STATES = (SYNCED, PARTIAL)

# Bounded retries and timeouts for the wandb client (its defaults retry for ~16 minutes when the
# server is unreachable, and the file stream up to 10085 times). Environment values win.
CLIENT_LIMITS = {
    "WANDB__GRAPHQL_RETRY_MAX": "3",
    "WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS": "10",
    "WANDB_HTTP_TIMEOUT": "30",
    "WANDB__FILE_STREAM_RETRY_MAX": "5",
    "WANDB__FILE_STREAM_RETRY_WAIT_MAX_SECONDS": "10",
    "WANDB__FILE_STREAM_TIMEOUT_SECONDS": "60",
    "WANDB__FILE_TRANSFER_RETRY_MAX": "5",
    "WANDB__FILE_TRANSFER_RETRY_WAIT_MAX_SECONDS": "10",
}
DEFAULT_TIMEOUT = 600.0  # outer kill timeout for one `wandb sync` subprocess, seconds


# ---------------------------------------------------------------------------------------------
# Offline runs and the ledger
# ---------------------------------------------------------------------------------------------


@dataclass
class OfflineRun:
    """One offline wandb run found in a workspace, with what the ledger says about it."""

    key: str  # the offline run dir relative to the workspace (the ledger key)
    path: Path  # <ws>/runs/<run-id>/wandb/offline-run-<date>-<wandb-id>
    run_id: str  # the ftmodel run id (<ws>/runs/<run-id>)
    wandb_id: str
    size: int  # bytes under the offline dir
    state: str = NEVER  # never | synced | failed (from the ledger)
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


def ledger_path(ws: Workspace | str | Path) -> Path:
    return _ws(ws).wandb_home / LEDGER_FILE


def read_ledger(ws: Workspace | str | Path) -> dict[str, dict]:
    """Return the ledger: {offline run key: entry}; empty when missing or unreadable."""
    try:
        data = json.loads(ledger_path(ws).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("runs", {}) if isinstance(data, dict) else {}


def _record(ws: Workspace, key: str, entry: dict) -> None:
    """Merge one run's entry into the ledger (locked read-modify-write, atomic replace)."""
    ws.wandb_home.mkdir(parents=True, exist_ok=True)
    with file_lock(ws.wandb_home / ".sync_ledger.lock"):
        runs = read_ledger(ws)
        runs[key] = {**runs.get(key, {}), **entry}
        atomic_write_text(ledger_path(ws), json.dumps({"version": 1, "runs": runs}, indent=2, sort_keys=True) + "\n")


def _ws(ws: Workspace | str | Path) -> Workspace:
    return ws if isinstance(ws, Workspace) else Workspace(Path(ws))


def _dir_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def list_offline_runs(ws: Workspace | str | Path) -> list[OfflineRun]:
    """Every offline wandb run in the workspace (`<ws>/runs/<id>/wandb/offline-run-*`), oldest first."""
    ws = _ws(ws)
    ledger = read_ledger(ws)
    remote = receipts.reached(ws)
    out = []
    for path in sorted(ws.runs.glob("*/wandb/offline-run-*"), key=lambda p: p.name):
        files = sorted(path.glob("run-*.wandb"))
        if not path.is_dir() or not files:
            continue
        key = path.relative_to(ws.root).as_posix()
        entry = ledger.get(key, {})
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
            raise LookupError(f"no offline wandb run matches {name!r}")
        if len({r.run_id for r in matches}) > 1:
            raise LookupError(f"{name!r} is ambiguous: {', '.join(sorted({r.run_id for r in matches})[:5])}")
        chosen += [r for r in matches if r not in chosen]
    return chosen


def status(ws: Workspace | str | Path) -> list[OfflineRun]:
    """Every offline run with its ledger state (never / synced / failed and why), size and URL."""
    return list_offline_runs(ws)


# ---------------------------------------------------------------------------------------------
# Staging: a copy of the offline run, without the history the server already has
# ---------------------------------------------------------------------------------------------


def stage_copy(ws: Workspace, run: OfflineRun, skip_history: int) -> Path:
    """Copy the offline run to `<ws>/.wandb/sync-stage/` leaving out its first `skip_history` history
    records, with every staged artifact path pointing where the file is now (a moved workspace);
    return the staged offline-run dir (wandb writes its markers and files there, not in ours)."""
    root = ws.wandb_home / STAGE_DIR / run.wandb_id
    shutil.rmtree(root, ignore_errors=True)
    staged = root / run.path.name  # keeps the `offline-run-` prefix: wandb sync skips other names
    staged.mkdir(parents=True)
    if (run.path / "files").is_dir():
        shutil.copytree(run.path / "files", staged / "files", symlinks=True)
    header, records = read_log_records(run.wandb_file)
    kept, dropped = [], 0
    run_dir = run.path.parent.parent

    def where(recorded: str) -> str:
        found = resolve_staged(recorded, ws.root, run_dir)
        return str(found.resolve()) if found else recorded

    for rec in records:
        fields = top_level_fields(rec)
        if dropped < skip_history and HISTORY in fields:
            dropped += 1
            continue
        kept.append(map_artifact_paths(rec, where))
    write_log_records(staged / run.wandb_file.name, header, kept)
    return staged


# ---------------------------------------------------------------------------------------------
# Syncing
# ---------------------------------------------------------------------------------------------


def sync_environment(
    ws: Workspace, base_env: dict[str, str], base_url: str, api_key: str, limits: dict[str, str] | None = None
) -> dict[str, str]:
    """The wandb client's environment: `base_env`, the workspace's wandb dirs, bounded retries
    (defaults < `base_env` < `limits`), the server and the key."""
    env = {**CLIENT_LIMITS, **base_env, **{k: str(v) for k, v in (limits or {}).items()}}
    env.update(wandb_environment(ws))
    env.update(
        {
            "WANDB_BASE_URL": base_url,
            "WANDB_API_KEY": api_key,
            "WANDB_MODE": "online",
            "WANDB_SILENT": "false",
            "NO_COLOR": "1",
        }
    )
    env.pop("WANDB_DIR", None)
    for key in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    return env


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


_VIEW_RUN = re.compile(r"View run .* at (\S+/([^/\s]+)/([^/\s]+)/runs/([^/\s]+))")


class Interrupted(Exception):
    """The sync was cancelled (Ctrl-C, or the console's cancel event); the client was stopped."""


def _stop_group(proc: subprocess.Popen) -> str:
    """Stop the client's whole process group (SIGTERM, then SIGKILL) and return what it printed."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    return out or ""


def run_client(staged: Path, env: dict[str, str], timeout: float, cancel=None) -> tuple[int | None, str]:
    """Run `wandb sync --yes <staged>`; kill its process group after `timeout` seconds.
    Return (exit code or None when killed, combined output). Ctrl-C (KeyboardInterrupt) or a set
    `cancel` event (threading.Event) stops the client's process group too, then raises Interrupted:
    the client runs in its own session, so the terminal's Ctrl-C never reaches it by itself."""
    cmd = [*wandb_command(), "sync", "--yes", str(staged)]
    # The client writes wandb/debug-*.log under its working directory: keep them in the workspace.
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        cwd=staged.parent,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    with contextlib.suppress(OSError):
        (staged.parent / "client.pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    try:
        while True:
            if cancel is not None and cancel.is_set():
                _stop_group(proc)
                raise Interrupted("cancelled")
            left = deadline - time.monotonic()
            if left <= 0:
                return None, _stop_group(proc)
            try:
                out, _ = proc.communicate(timeout=min(left, 0.5) if cancel is not None else left)
                return proc.returncode, out or ""
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:
        _stop_group(proc)
        raise


def _remove_stale_marker(run: OfflineRun) -> None:
    """wandb's `.synced` marker is written even when uploads fail: it must not hide a retry."""
    for marker in run.path.glob("run-*.wandb.synced"):
        with contextlib.suppress(OSError):
            marker.unlink()


def sync_runs(
    ws: Workspace | str | Path,
    runs: Iterable[OfflineRun] | None = None,
    *,
    dry_run: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    limits: dict[str, str] | None = None,
    force: bool = False,
    progress_cb: Callable[[str, str], None] | None = None,
    env: dict[str, str] | None = None,
    cancel=None,
    result_cb: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Sync offline runs (default: all) to the server in WANDB_BASE_URL and verify each one.

    Verified runs are skipped without any network traffic (unless `force`). `timeout` bounds each
    `wandb sync` subprocess; `limits` overrides the client's retry/timeout environment.
    `progress_cb(key, message)` is called from this thread as work proceeds. Each run is synced
    under its own lock (a second syncer gets a `busy` result naming the pid). Ctrl-C, or setting
    `cancel` (a threading.Event, for the console), stops the client, records the run as
    interrupted and returns; any other error is that run's failure in the ledger. `result_cb(result)`
    is called once per run when its outcome is final (a UI counts runs without parsing messages).
    """
    ws = _ws(ws)
    runs = list_offline_runs(ws) if runs is None else list(runs)
    say = progress_cb or (lambda key, msg: None)
    base_env = dict(os.environ if env is None else env)
    results: list[Result] = _Results(result_cb)
    pending = []
    for run in runs:
        entry = read_ledger(ws).get(run.key, {})
        if entry.get("state") in DONE_STATES and not force and not _grew_since(run, entry):
            why = (
                "already synced and verified" if entry["state"] == SYNCED else f"already synced ({entry.get('reason')})"
            )
            results.append(Result(run.key, "skipped", why, entry.get("url"), entry.get("counts", {})))
            say(run.key, f"skipped: {why}")
        elif still_running_here(run.path.parent.parent):
            results.append(Result(run.key, "skipped", "its stage is still running"))
            say(run.key, "skipped: its stage is still running")
        else:
            pending.append(run)
    if not pending:
        return results
    # wandb reads its settings file (base_url, api_key) from WANDB_CONFIG_DIR: the workspace's one.
    lookup_env = {**base_env, "WANDB_CONFIG_DIR": wandb_environment(ws)["WANDB_CONFIG_DIR"]}
    try:
        base_url = resolve_base_url(lookup_env)
        api_key = resolve_api_key(lookup_env, base_url)
    except SyncError as e:
        for run in pending:
            results.append(_fail(ws, run, str(e), None, dry_run))
            say(run.key, f"failed: {e}")
        return results
    client_env = sync_environment(ws, base_env, base_url, api_key, limits)
    server = Server(base_url, api_key, timeout=min(QUERY_TIMEOUT, max(1.0, timeout)))
    for run in pending:
        started = time.monotonic()
        stop = False
        try:
            with run_lock(ws.wandb_home, run.wandb_id, run.run_id):
                result = _sync_one(ws, run, server, client_env, api_key, dry_run, timeout, say, cancel)
        except RunBusy as e:
            result = Result(run.key, "busy", str(e))  # the other syncer records its own outcome
        except (KeyboardInterrupt, Interrupted) as e:
            why = "interrupted (Ctrl-C)" if isinstance(e, KeyboardInterrupt) else "cancelled"
            result = _fail(ws, run, f"{why} during sync; nothing verified, run it again", server.base_url, dry_run)
            result.state, stop = "interrupted", True
        except (SyncError, ServerError, LogFormatError) as e:
            result = _fail(ws, run, str(e), server.base_url, dry_run)
        except Exception as e:  # a network or disk fault is this run's failure, never the whole sync's
            result = _fail(ws, run, f"{type(e).__name__}: {e}", server.base_url, dry_run)
        result.seconds = round(time.monotonic() - started, 2)
        results.append(result)
        say(run.key, f"{result.state}" + (f": {result.reason}" if result.reason else ""))
        if stop:
            break
    return results


class _Results(list):
    """The results list, telling `result_cb` about each result as it is appended."""

    def __init__(self, result_cb):
        super().__init__()
        self.result_cb = result_cb

    def append(self, result) -> None:
        super().append(result)
        if self.result_cb is not None:
            self.result_cb(result)


def _grew_since(run: OfflineRun, entry: dict) -> bool:
    """Whether the offline record changed since it was synced (more rows carried in by a bundle)."""
    size = entry.get("wandb_size")
    try:
        return size is not None and run.wandb_file.stat().st_size != size
    except OSError:
        return False


def _fail(
    ws: Workspace,
    run: OfflineRun,
    reason: str,
    server_url: str | None,
    dry_run: bool,
    counts: dict | None = None,
    url: str | None = None,
) -> Result:
    if not dry_run:
        _record(
            ws,
            run.key,
            {
                "state": FAILED,
                "reason": reason,
                "time": time.time(),
                "server": server_url,
                "counts": counts or {},
                "wandb_id": run.wandb_id,
                "url": url,
            },
        )
    return Result(run.key, "failed", reason, url, counts or {})


def _sync_one(
    ws: Workspace,
    run: OfflineRun,
    server: Server,
    env: dict[str, str],
    api_key: str,
    dry_run: bool,
    timeout: float,
    say,
    cancel=None,
) -> Result:
    size_before = run.wandb_file.stat().st_size
    local = read_local(run, env)
    entry = read_ledger(ws).get(run.key, {})
    project = local.project or "uncategorized"
    missing = [a for a in local.artifacts if a["missing"]]

    # Ask the server what it already holds (and fail fast when it cannot be reached).
    say(run.key, f"checking {server.base_url}")
    try:
        entity = entry.get("entity") or local.entity or server.viewer_entity()
        remote = server.run(entity, project, run.wandb_id)
    except ServerError as e:
        if dry_run:
            return Result(run.key, "dry-run", str(e), would_send=_describe(local, 0, missing) + " (server not checked)")
        return _fail(ws, run, str(e), server.base_url, dry_run)
    on_server = int((remote or {}).get("historyLineCount") or 0)
    if on_server > local.history_rows:
        return _fail(
            ws,
            run,
            f"the server already has {on_server} history rows of this run, more than the "
            f"{local.history_rows} logged locally; not sending more",
            server.base_url,
            dry_run,
        )
    if on_server:
        last = _json_field(remote.get("historyKeys")).get("lastStep")
        if last is not None and int(last) != local.history_steps[on_server - 1]:
            return _fail(
                ws,
                run,
                f"the server's history of this run ends at step {last}, the local row "
                f"{on_server} is step {local.history_steps[on_server - 1]}: histories diverge",
                server.base_url,
                dry_run,
            )
    if dry_run:
        return Result(run.key, "dry-run", would_send=_describe(local, on_server, missing))

    staged = stage_copy(ws, run, on_server)
    _remove_stale_marker(run)
    say(run.key, f"sending {local.history_rows - on_server} of {local.history_rows} history rows")
    try:
        code, output = run_client(staged, env, timeout, cancel)
    finally:
        shutil.rmtree(staged.parent, ignore_errors=True)
    output = _redact(output, api_key)
    url, m = None, _VIEW_RUN.search(output)
    if m:
        url, entity, project = m.group(1), m.group(2), m.group(3)
    errors = [ln.split("ERROR", 1)[1].strip() for ln in output.splitlines() if "ERROR" in ln]
    if code is None:
        errors.insert(0, f"wandb sync timed out after {timeout:g}s and was stopped")
    elif code != 0:
        errors.insert(0, f"wandb sync exited with {code}: {output.strip().splitlines()[-1:] or ''}")

    # Verify against the server: only this decides.
    try:
        remote = server.run(entity, project, run.wandb_id)
    except ServerError as e:
        return _fail(ws, run, "; ".join(errors + [f"cannot verify: {e}"]), server.base_url, False)
    problems, counts = compare(local, remote)
    counts["history_sent"] = local.history_rows - on_server
    if remote:
        entity = ((remote.get("project") or {}).get("entity") or {}).get("name") or entity
        project = (remote.get("project") or {}).get("name") or project
        url = url or f"{app_url(server.base_url)}/{entity}/{project}/runs/{run.wandb_id}"
    if problems:
        staging = [f"artifact {a['name']}: staged file missing ({', '.join(a['missing'][:2])})" for a in missing]
        return _fail(ws, run, "; ".join(staging + errors + problems)[:1000], server.base_url, False, counts, url)
    # The server holds all of the record; is the record all of the run?
    incomplete = incomplete_reason(run.path.parent.parent, local.history_steps, local.exited)
    state, reason = (PARTIAL, incomplete) if incomplete else (SYNCED, "verified")
    _record(
        ws,
        run.key,
        {
            "state": state,
            "reason": reason,
            "time": time.time(),
            "server": server.base_url,
            "counts": counts,
            "wandb_id": run.wandb_id,
            "entity": entity,
            "project": project,
            "url": url,
            "wandb_size": size_before,
        },
    )
    return Result(run.key, "synced" if state == SYNCED else PARTIAL, reason, url, counts)


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
