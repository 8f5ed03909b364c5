"""Sync offline wandb runs to a W&B server, verify them there, and record the outcome.

Why not just `wandb sync`: in wandb 0.31 it exits 0 and writes its `.synced` marker even when the
file-stream, artifact or run-file uploads failed, and a run that is partly on the server is re-sent
from the server's `historyLineCount` with ALL local rows (duplicating the first ones). So, per run:

1. ask the server what it already holds of the run (our own query, ftmodel.wandb_server);
2. let the real `wandb sync` client upload a staged copy holding only what is missing
   (ftmodel.sync_client: the copy, the client's environment, its bounds);
3. check the server against the local record (read with wandb's own reader, ftmodel.sync_verify):
   history rows and last step, summary, config, every artifact committed;
4. only then record the run as synced in our ledger (ftmodel.sync_ledger) — or `partial` when the
   record is not the whole run (ftmodel.sync_guard), or failed, with the reason.

One syncer per run (a lock; a second one is told the holder's pid); Ctrl-C stops the client's
process group and is recorded; any error of one run is that run's failure. The server and key are
the ones wandb itself would use (`wandb login --host URL` is enough); a key never leaves for another
host. Carrying runs off an air-gapped box is ftmodel.bundle; receipts, ftmodel.receipts; the
`.wandb` format, ftmodel.wandb_log.

Stdlib only at import time (the console imports this); wandb itself runs as subprocesses, and its
protobuf classes load when a run is staged.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ftmodel.errors import ServerError, SyncError
from ftmodel.sync_client import (
    CLIENT_LIMITS,
    DEFAULT_TIMEOUT,
    Interrupted,
    read_output,
    remove_stale_marker,
    run_client,
    scratch_environment,
    stage_copy,
    sync_environment,
)
from ftmodel.sync_guard import RunBusy, incomplete_reason, run_lock, still_running_here
from ftmodel.sync_ledger import (
    DONE_STATES,
    FAILED,
    NEVER,
    PARTIAL,
    SYNCED,
    OfflineRun,
    Result,
    as_workspace,
    grew_since,
    ledger_path,
    list_offline_runs,
    read_ledger,
    record,
    record_failure,
    select_runs,
    status,
)
from ftmodel.sync_verify import LocalRecord, compare, describe, json_field, read_local, wandb_command, wandb_exe
from ftmodel.textio import human_size
from ftmodel.wandb_log import LogFormatError, read_log_records, write_log_records
from ftmodel.wandb_server import QUERY_TIMEOUT, Credentials, Server, resolve_credentials
from ftmodel.workspace import Workspace

# The names the CLI, the console, bundles and tests use from here (each lives in its own module).
__all__ = [
    "CLIENT_LIMITS",
    "DEFAULT_TIMEOUT",
    "DONE_STATES",
    "FAILED",
    "NEVER",
    "PARTIAL",
    "SYNCED",
    "Credentials",
    "Interrupted",
    "LocalRecord",
    "LogFormatError",
    "OfflineRun",
    "Result",
    "Server",
    "ServerError",
    "SyncError",
    "compare",
    "human_size",
    "ledger_path",
    "list_offline_runs",
    "read_ledger",
    "read_log_records",
    "resolve_credentials",
    "run_client",
    "select_runs",
    "stage_copy",
    "status",
    "sync_environment",
    "sync_runs",
    "wandb_command",
    "wandb_exe",
    "write_log_records",
]


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
    cwd: str | Path | None = None,
    cancel=None,
    result_cb: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Sync offline runs (default: all) to the W&B server wandb would use, and verify each one.

    `env` and `cwd` are where the server and key are looked up as wandb looks them up (default:
    this process's environment and directory). Verified runs are skipped without any network
    traffic (unless `force`). `timeout` bounds each `wandb sync` subprocess; `limits` overrides the
    client's retry/timeout environment. `progress_cb(key, message)` is called from this thread as
    work proceeds. Each run is synced under its own lock (a second syncer gets a `busy` result
    naming the pid). Ctrl-C, or setting `cancel` (a threading.Event, for the console), stops the
    client, records the run as interrupted and returns; any other error is that run's failure in
    the ledger. `result_cb(result)` is called once per run when its outcome is final.
    """
    ws = as_workspace(ws)
    runs = list_offline_runs(ws) if runs is None else list(runs)
    say = progress_cb or (lambda key, msg: None)
    base_env = dict(os.environ if env is None else env)
    results: list[Result] = _Results(result_cb)
    pending = []
    for run in runs:
        entry = read_ledger(ws).get(run.key, {})
        if entry.get("state") in DONE_STATES and not force and not grew_since(run, entry):
            why = (
                "already synced and verified" if entry["state"] == SYNCED else f"already synced ({entry.get('reason')})"
            )
            results.append(Result(run.key, "skipped", why, entry.get("url"), entry.get("counts", {})))
            say(run.key, f"skipped: {why}")
        elif still_running_here(run.run_dir):
            results.append(Result(run.key, "skipped", "its stage is still running"))
            say(run.key, "skipped: its stage is still running")
        else:
            pending.append(run)
    if not pending:
        return results
    try:
        creds = resolve_credentials(base_env, cwd, scratch=scratch_environment(ws))
    except SyncError as e:
        for run in pending:
            results.append(_fail(ws, run, str(e), None, dry_run))
            say(run.key, f"failed: {e}")
        return results
    client_env = sync_environment(ws, base_env, creds.client_environment(), limits)
    server = Server.of(creds, timeout=min(QUERY_TIMEOUT, max(1.0, timeout)))
    for run in pending:
        started = time.monotonic()
        stop = False
        try:
            with run_lock(ws.wandb_home, run.wandb_id, run.run_id):
                result = _sync_one(ws, run, server, client_env, creds.secrets, dry_run, timeout, say, cancel)
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
        record_failure(ws, run, reason, server_url, counts, url)
    return Result(run.key, "failed", reason, url, counts or {})


def _sync_one(
    ws: Workspace,
    run: OfflineRun,
    server: Server,
    env: dict[str, str],
    secrets: list[str],
    dry_run: bool,
    timeout: float,
    say,
    cancel=None,
) -> Result:
    size_before = run.wandb_file.stat().st_size
    log = read_log_records(run.wandb_file)  # a file we cannot read whole is refused before anything is sent
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
            return Result(run.key, "dry-run", str(e), would_send=describe(local, 0, missing) + " (server not checked)")
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
        last = json_field(remote.get("historyKeys")).get("lastStep")
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
        return Result(run.key, "dry-run", would_send=describe(local, on_server, missing))

    staged = stage_copy(ws, run, on_server, log)
    remove_stale_marker(run)
    say(run.key, f"sending {local.history_rows - on_server} of {local.history_rows} history rows")
    try:
        code, output = run_client(staged, env, timeout, cancel)
    finally:
        shutil.rmtree(staged.parent, ignore_errors=True)
    _, client = read_output(output, code, timeout, secrets)
    url = client.url
    entity, project = client.entity or entity, client.project or project

    # Verify against the server: only this decides.
    try:
        remote = server.run(entity, project, run.wandb_id)
    except ServerError as e:
        return _fail(ws, run, "; ".join(client.errors + [f"cannot verify: {e}"]), server.base_url, False)
    problems, counts = compare(local, remote)
    counts["history_sent"] = local.history_rows - on_server
    if remote:
        entity = ((remote.get("project") or {}).get("entity") or {}).get("name") or entity
        project = (remote.get("project") or {}).get("name") or project
        url = url or f"{server.app_url}/{entity}/{project}/runs/{run.wandb_id}"
    if problems:
        staging = [f"artifact {a['name']}: staged file missing ({', '.join(a['missing'][:2])})" for a in missing]
        reason = "; ".join(staging + client.errors + problems)[:1000]
        return _fail(ws, run, reason, server.base_url, False, counts, url)
    # The server holds all of the record; is the record all of the run?
    incomplete = incomplete_reason(run.run_dir, local.history_steps, local.exited)
    state, reason = (PARTIAL, incomplete) if incomplete else (SYNCED, "verified")
    record(
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
