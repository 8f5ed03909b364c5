"""What an offline run holds (read back with wandb's own reader) and how it compares with what the
server holds: the history rows and last step, summary, config and every logged artifact."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ftmodel.errors import SyncError
from ftmodel.i18n import t
from ftmodel.wandb_log import resolve_staged


class OfflineRunLike(Protocol):
    """What reading a run back needs of `sync.OfflineRun` (named here, so this module never imports sync)."""

    path: Path
    key: str


@dataclass
class LocalRecord:
    """What the offline run holds, read with `wandb leet inspect --json`."""

    entity: str
    project: str
    name: str
    history_rows: int
    history_steps: list[int]
    summary: dict
    config: dict
    artifacts: list[dict]  # {name, type, digest, missing: [staged paths that are gone]}
    exited: bool


def wandb_exe() -> Path:
    return Path(sys.executable).parent / "wandb"


def wandb_command() -> list[str]:
    """The wandb CLI of this interpreter: its console script, or `python -m wandb` when the
    environment has none next to the interpreter (a venv layered on another's site-packages)."""
    exe = wandb_exe()
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "wandb"]


def read_local(run: OfflineRunLike, env: dict[str, str], timeout: float = 120) -> LocalRecord:
    """Read an offline run back with wandb's own reader."""
    ws_root = run.path.parent.parent.parent.parent  # <ws>/runs/<id>/wandb/offline-run-*
    exe = wandb_command()

    def leet(*args: str) -> str:
        proc = subprocess.run(
            [*exe, "leet", "inspect", *args, str(run.path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise SyncError(
                t("cannot read {path}: {reason}", path=run.key, reason=(proc.stderr or proc.stdout).strip()[-300:])
            )
        return proc.stdout

    summary = json.loads(leet("--summary", "--json"))
    steps, artifacts, exited = [], [], False
    for line in leet("--json").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        kind = rec.get("type")
        if kind == "history":
            hist = rec.get("history") or {}
            step = (hist.get("step") or {}).get("num")
            if step is None:
                step = (hist.get("item") or {}).get("_step")
            steps.append(int(step or 0))
        elif kind == "artifact":
            art = rec.get("artifact") or {}
            contents = (art.get("manifest") or {}).get("contents") or []
            missing = [
                c["local_path"]
                for c in contents
                if c.get("local_path") and not resolve_staged(c["local_path"], ws_root, run.path.parent.parent)
            ]
            artifacts.append(
                {"name": art.get("name"), "type": art.get("type"), "digest": art.get("digest"), "missing": missing}
            )
        elif kind == "exit":
            exited = True
    return LocalRecord(
        entity=summary.get("entity") or "",
        project=summary.get("project") or "",
        name=summary.get("name") or "",
        history_rows=len(steps),
        history_steps=steps,
        summary=summary.get("summary") or {},
        config=summary.get("config") or {},
        artifacts=artifacts,
        exited=exited,
    )


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and math.isnan(a):
            return isinstance(b, float) and math.isnan(b)
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, str) and isinstance(b, (int, float)) and a in ("NaN", "Infinity", "-Infinity"):
        return _same(float(a), b)
    if isinstance(b, str) and isinstance(a, (int, float)) and b in ("NaN", "Infinity", "-Infinity"):
        return _same(a, float(b))
    if isinstance(a, dict) and isinstance(b, dict):
        if "_type" in a:  # media and tables: the server rewrites paths; presence is what counts
            return True
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def json_field(value) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _unwrap_config(config: dict) -> dict:
    """The server stores config as {key: {"value": v, "desc": …}}: return {key: v}."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and "value" in value and set(value) <= {"value", "desc"}:
            out[key] = value["value"]
        else:
            out[key] = value
    return out


def compare(local: LocalRecord, remote: dict | None) -> tuple[list[str], dict]:
    """Compare the server's run with the local record; return (problems, counts)."""
    if not remote:
        return ["run not found on the server"], {}
    problems = []
    lines = int(remote.get("historyLineCount") or 0)
    counts = {"history_local": local.history_rows, "history_server": lines, "artifacts_local": len(local.artifacts)}
    if lines != local.history_rows:
        problems.append(f"history: server has {lines} rows, local run has {local.history_rows}")
    last_step = json_field(remote.get("historyKeys")).get("lastStep")
    if (
        local.history_steps
        and last_step is not None
        and lines == local.history_rows
        and int(last_step) != local.history_steps[-1]
    ):
        problems.append(f"history: server's last step is {last_step}, local last step is {local.history_steps[-1]}")
    summary = json_field(remote.get("summaryMetrics"))
    # Keys wandb sets itself (`_step`, `_runtime`, …) are left out: the client drops `_step` from the
    # summary when a retry sends no history rows; the last step is checked through historyKeys.
    bad = [
        k for k, v in local.summary.items() if not k.startswith("_") and (k not in summary or not _same(v, summary[k]))
    ]
    if bad:
        problems.append(f"summary differs: {', '.join(sorted(bad)[:8])}")
    config = _unwrap_config(json_field(remote.get("config")))
    bad = [k for k, v in local.config.items() if k != "_wandb" and (k not in config or not _same(v, config[k]))]
    if bad:
        problems.append(f"config differs: {', '.join(sorted(bad)[:8])}")
    server_arts = [e["node"] for e in ((remote.get("outputArtifacts") or {}).get("edges") or []) if e.get("node")]
    committed = 0
    for art in local.artifacts:
        found = [
            a
            for a in server_arts
            if a.get("digest") == art["digest"] and (a.get("artifactSequence") or {}).get("name") == art["name"]
        ]
        if not found:
            problems.append(f"artifact {art['name']} ({art['type']}) is not on the server")
        elif not any(a.get("state") == "COMMITTED" for a in found):
            problems.append(f"artifact {art['name']} ({art['type']}) is not committed ({found[0].get('state')})")
        else:
            committed += 1
    counts["artifacts_committed"] = committed
    return problems, counts


def describe(local: LocalRecord, on_server: int, missing: list[dict]) -> str:
    parts = [
        f"{local.history_rows - on_server} history rows"
        + (f" (server has {on_server} of {local.history_rows})" if on_server else ""),
        f"summary ({len(local.summary)} keys)",
        f"config ({len(local.config)} keys)",
        f"{len(local.artifacts)} artifact(s)",
    ]
    if missing:
        parts.append(f"{len(missing)} with staged files missing")
    return ", ".join(parts)
