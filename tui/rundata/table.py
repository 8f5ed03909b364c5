"""The runs browser's rows: every run with its final metrics, wandb mode and sync state; its files."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from ftmodel.i18n import t
from ftmodel.rundir import METRICS_FILE, MetricsReader, restore_nonfinite
from ftmodel.sentinel import read_alerts
from tui.rundata.series import columns_from_rows, drawable
from tui.rundata.summary import RunSummary, clock, fmt_duration

KEY_METRICS = ("loss", "reward", "answer_accuracy")


@dataclass
class RunRow:
    """One line of the runs browser."""

    summary: RunSummary
    metrics: dict[str, float] = field(default_factory=dict)
    wandb_mode: str = "—"
    sync: str = "—"
    link_target: str | None = None  # where the run directory really is, when it is a symbolic link
    newest_alert: str = ""  # the rule of the run's newest alert (its count is the summary's)

    @property
    def id(self) -> str:
        return self.summary.id

    def cells(self) -> tuple[str, ...]:
        s = self.summary
        start = clock(s.started or s.created)
        duration = fmt_duration((s.ended or _now()) - s.started) if s.started else "—"
        return (
            s.id,
            s.stage,
            s.status,
            self.alerts_cell(),
            start,
            duration,
            *(_num(self.metrics.get(m)) for m in KEY_METRICS),
            self.wandb_mode,
            self.sync,
        )

    def alerts_cell(self) -> str:
        """How many alerts and the newest rule (`2 stall`, as `ftmodel runs` says it), empty when none."""
        count = self.summary.alerts
        if not count:
            return ""
        return f"{count} {self.newest_alert}" if self.newest_alert else str(count)

    def matches(self, stage: str | None, state: str | None, text: str) -> bool:
        s = self.summary
        if stage and s.stage != stage:
            return False
        if state and s.status != state:
            return False
        return not text or text.lower() in " ".join(self.cells()).lower()


def _now() -> float:
    return time.time()


def _num(v: float | None) -> str:
    """A metric as the runs table shows it (see number_cell)."""
    return number_cell(v, "{:.3g}")


def number_cell(value, fmt: str = "{:.3g}") -> str:
    """A number from a run's files as a table cell: `—` for none, `nan` and `inf` as such, an
    absurd magnitude (1e308, an integer beyond any float) in a few cells, exactly: never raises."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) and not -(10**15) < value < 10**15:
        return format(Decimal(value), ".3g")  # float() of 10**400 would raise
    if value - value != 0 or abs(value) >= 1e15:
        return f"{value:.3g}"  # nan, inf, 1e308
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return fmt.format(value)


def last_metrics(run_path: Path, names=KEY_METRICS, tail_bytes: int = 256 * 1024) -> dict[str, float]:
    """The last logged value of each named metric (reads only the end of metrics.jsonl), plus
    answer_accuracy from an eval report when the run has one."""
    out: dict[str, float] = {}
    path = Path(run_path) / METRICS_FILE
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - tail_bytes))
            lines = fh.read().split(b"\n")
    except OSError:
        lines = []
    for line in reversed(lines):
        if len(out) == len(names):
            break
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict):
            continue
        for name in names:
            v = restore_nonfinite(row.get(name))
            if name not in out and isinstance(v, (int, float)) and not isinstance(v, bool):
                out[name] = v  # as written: number_cell shows it, an int too big for a float too
    if "answer_accuracy" in names and "answer_accuracy" not in out:
        for report in sorted(Path(run_path).glob("eval_*.json")):
            try:
                v = json.loads(report.read_text(encoding="utf-8")).get("answer_accuracy")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out["answer_accuracy"] = v
    return out


def run_rows(summaries: list[RunSummary], workspace: Path) -> list[RunRow]:
    """Build the runs browser's rows, newest first (done in a worker: it reads files)."""
    from ftmodel.sync import list_offline_runs

    sync_state: dict[str, str] = {}
    try:
        for off in list_offline_runs(workspace):
            sync_state[off.run_id] = off.state
    except OSError:
        pass
    rows = []
    for s in reversed(summaries):
        try:
            state = json.loads((s.path / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = {}
        wandb = state.get("wandb") or {}
        rows.append(
            RunRow(
                s,
                last_metrics(s.path),
                wandb.get("mode") or "—",
                sync_state.get(s.id, "—" if wandb.get("mode") != "offline" else "never"),
                os.path.realpath(s.path) if s.path.is_symlink() else None,
                newest_rule(s.path) if s.alerts else "",
            )
        )
    return rows


def newest_rule(run_path: Path) -> str:
    """The rule of a run's newest alert ("" when it has none that reads)."""
    alerts = read_alerts(Path(run_path))
    return alerts[-1].rule if alerts else ""


def artifacts(run_path: Path) -> list[tuple[str, int]]:
    """Files and folders a run made (name, bytes), the run-dir protocol files left out."""
    skip = {"state.json", ".state.lock", "config.toml", "metrics.jsonl", "stage.log"}
    out = []
    for p in sorted(Path(run_path).iterdir()):
        if p.name in skip or p.name.startswith("."):
            continue
        if p.is_dir():
            size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            out.append((p.name + "/", size))
        else:
            out.append((p.name, p.stat().st_size))
    return out


def metric_series(run_path: Path, name: str) -> tuple[list[float], list[float]]:
    """All drawable (step, value) points of one metric of a run: what a chart of it draws (NaN and
    ±inf left out, absurd magnitudes at ±DRAW_LIMIT; see tui.rundata.series)."""
    rows = MetricsReader(Path(run_path) / METRICS_FILE).read_new()
    xs, ys = columns_from_rows([{"step": row.get("step", i), name: row.get(name)} for i, row in enumerate(rows)]).get(
        name, ([], [])
    )
    shown = [(x, y) for x, y in zip(xs, map(drawable, ys)) if y is not None]
    return [x for x, _ in shown], [y for _, y in shown]


def remove_run_dir(path: Path) -> tuple[bool, str]:
    """Delete a run directory; return (removed, what happened, for the user).

    A run that is a symbolic link (a run moved to another disk) loses only the link: deleting
    through it would remove files outside the workspace. Nothing is reported deleted that is not.
    """
    path = Path(path)
    run_id = path.name
    if path.is_symlink():
        target = os.path.realpath(path)
        try:
            path.unlink()
        except OSError as e:
            return False, t("cannot remove the link {run}: {error}", run=run_id, error=e)
        return True, t("removed the link {run}; its files at {target} are kept", run=run_id, target=target)
    errors: list[str] = []
    shutil.rmtree(path, onerror=lambda fn, p, info: errors.append(f"{p}: {info[1]}"))
    if path.exists():
        return False, t("could not delete {run}: {error}", run=run_id, error=errors[0] if errors else "?")
    return True, t("deleted {run}", run=run_id)
