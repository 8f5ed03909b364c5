"""The real `wandb sync` client, run for one offline run: what it is given, and how it is bounded.

- `stage_copy`: it syncs a COPY of the offline run under `<ws>/.wandb/sync-stage/` (the offline
  run itself is never modified): without the history rows the server already holds (wandb 0.31
  re-sends every local row from the server's count otherwise), with every staged artifact path
  pointing where the file is now (the `.wandb` file records absolute paths: a moved workspace).
- `sync_environment`: the workspace's wandb directories, bounded retries and timeouts (its
  defaults retry for ~16 minutes against a server that is down), the server and its key.
- `run_client`: the subprocess in its own session, killed (its whole process group) after an
  outer timeout, on Ctrl-C or on the console's cancel; `read_output` what it said.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ftmodel.errors import FtmodelError
from ftmodel.sync_ledger import OfflineRun
from ftmodel.sync_verify import wandb_command
from ftmodel.tracking import wandb_environment
from ftmodel.wandb_log import (
    LogFormatError,
    map_artifact_paths,
    read_log_records,
    record_type,
    resolve_staged,
    write_log_records,
)
from ftmodel.workspace import Workspace

STAGE_DIR = "sync-stage"
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
# Credentials the client must take from us, never from the environment it inherits.
_CREDENTIAL_VARS = ("WANDB_BASE_URL", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE")


class Interrupted(FtmodelError):
    """The sync was cancelled (Ctrl-C, or the console's cancel event); the client was stopped."""


def stage_copy(ws: Workspace, run: OfflineRun, skip_history: int, log: tuple[bytes, list[bytes]] | None = None) -> Path:
    """Copy the offline run to `<ws>/.wandb/sync-stage/` leaving out its first `skip_history` history
    records, with every staged artifact path pointing where the file is now (a moved workspace);
    return the staged offline-run dir (wandb writes its markers and files there, not in ours).
    `log`: the file's (header, records) when already read. LogFormatError (naming the file) when
    the record cannot be read whole: nothing is staged then."""
    root = ws.wandb_home / STAGE_DIR / run.wandb_id
    shutil.rmtree(root, ignore_errors=True)
    header, records = log or read_log_records(run.wandb_file)
    staged = root / run.path.name  # keeps the `offline-run-` prefix: wandb sync skips other names
    kept, dropped = [], 0

    def where(recorded: str) -> str:
        found = resolve_staged(recorded, ws.root, run.run_dir)
        return str(found.resolve()) if found else recorded

    try:
        for rec in records:
            kind = record_type(rec)
            if dropped < skip_history and kind == "history":
                dropped += 1
                continue
            kept.append(map_artifact_paths(rec, where) if kind == "artifact" else rec)
    except LogFormatError as e:
        raise LogFormatError(f"{run.wandb_file}: {e}") from None
    staged.mkdir(parents=True)
    if (run.path / "files").is_dir():
        shutil.copytree(run.path / "files", staged / "files", symlinks=True)
    write_log_records(staged / run.wandb_file.name, header, kept)
    return staged


def scratch_environment(ws: Workspace) -> dict[str, str]:
    """Where wandb writes while it syncs for us: its cache and logs, and the access tokens an
    identity-token login caches (`WANDB_CREDENTIALS_FILE`), all inside the workspace."""
    dirs = wandb_environment(ws)
    return {
        "WANDB_CACHE_DIR": dirs["WANDB_CACHE_DIR"],
        "WANDB_CREDENTIALS_FILE": str(Path(dirs["WANDB_CONFIG_DIR"]) / "credentials.json"),
    }


def sync_environment(
    ws: Workspace, base_env: dict[str, str], credentials: dict[str, str], limits: dict[str, str] | None = None
) -> dict[str, str]:
    """The wandb client's environment: `base_env`, the workspace's wandb dirs, bounded retries
    (defaults < `base_env` < `limits`), and `credentials` (the server and its key or identity
    token: `Credentials.client_environment()`), replacing any the environment held."""
    env = {**CLIENT_LIMITS, **base_env, **{k: str(v) for k, v in (limits or {}).items()}}
    for name in _CREDENTIAL_VARS:
        env.pop(name, None)
    env.update(wandb_environment(ws))
    env.setdefault("WANDB_CREDENTIALS_FILE", scratch_environment(ws)["WANDB_CREDENTIALS_FILE"])
    env.update(credentials)
    env.update({"WANDB_MODE": "online", "WANDB_SILENT": "false", "NO_COLOR": "1"})
    env.pop("WANDB_DIR", None)
    for key in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    return env


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


def remove_stale_marker(run: OfflineRun) -> None:
    """wandb's `.synced` marker is written even when uploads fail: it must not hide a retry."""
    for marker in run.path.glob("run-*.wandb.synced"):
        with contextlib.suppress(OSError):
            marker.unlink()


_VIEW_RUN = re.compile(r"View run .* at (\S+/([^/\s]+)/([^/\s]+)/runs/([^/\s]+))")


@dataclass
class ClientReport:
    """What the client's output says: the run's URL (entity, project) and its ERROR lines."""

    url: str | None = None
    entity: str | None = None
    project: str | None = None
    errors: list[str] = field(default_factory=list)


def read_output(output: str, code: int | None, timeout: float, secrets: list[str]) -> tuple[str, ClientReport]:
    """The client's output with `secrets` blanked out, and what it says."""
    for secret in secrets:
        output = output.replace(secret, "***")
    report = ClientReport(errors=[ln.split("ERROR", 1)[1].strip() for ln in output.splitlines() if "ERROR" in ln])
    if m := _VIEW_RUN.search(output):
        report.url, report.entity, report.project = m.group(1), m.group(2), m.group(3)
    if code is None:
        report.errors.insert(0, f"wandb sync timed out after {timeout:g}s and was stopped")
    elif code != 0:
        report.errors.insert(0, f"wandb sync exited with {code}: {output.strip().splitlines()[-1:] or ''}")
    return output, report
