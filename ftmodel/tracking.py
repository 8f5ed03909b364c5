"""Log a stage's metrics to metrics.jsonl and mirror the very same rows to wandb.

metrics.jsonl is always written. wandb is optional: missing, disabled in the config, or
`WANDB_MODE=disabled` in the environment means one warning and the stage goes on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftmodel.config import Config
from ftmodel.i18n import t
from ftmodel.rundir import MetricsWriter, Run
from ftmodel.workspace import Workspace


def wandb_mode(cfg: Config) -> str:
    """Return the effective wandb mode: `WANDB_MODE=disabled` and `enabled = false` win."""
    if os.environ.get("WANDB_MODE", "").lower() == "disabled" or not cfg.wandb.enabled:
        return "disabled"
    return cfg.wandb.mode


def wandb_environment(ws: Workspace) -> dict[str, str]:
    """Environment that keeps wandb's staging, cache and settings inside the workspace."""
    home = ws.wandb_home.resolve()
    return {
        "WANDB_DATA_DIR": str(home / "data"),
        "WANDB_CACHE_DIR": str(home / "cache"),
        "WANDB_CONFIG_DIR": str(home / "config"),
        "WANDB_ARTIFACT_DIR": str(home / "artifacts"),
    }


def clean_metrics(metrics: dict) -> dict[str, float]:
    """Keep numeric values only (bools as 0/1), as floats or ints."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            out[key] = int(value)
        elif isinstance(value, (int, float)):
            out[key] = value
        elif hasattr(value, "item"):  # numpy / torch scalars
            try:
                out[key] = value.item()
            except (ValueError, RuntimeError):
                continue
    return out


class Tracker:
    """One stage's metrics sink: metrics.jsonl first, the same rows to wandb when it is on."""

    def __init__(
        self,
        run: Run,
        cfg: Config,
        ws: Workspace,
        *,
        stage: str,
        run_name: str,
        tags: list[str],
        wandb_config: dict,
        group: str | None,
        log: Callable[[str], None],
        request_stop: Callable[[str], None] | None = None,
    ):
        self.run = run
        self._writer = MetricsWriter(run.metrics_path)
        self._wandb = None
        self._wb_run = None
        self._log = log
        self.mode = wandb_mode(cfg)
        self.last_step = -1
        state = run.read_state()
        args = state.get("args") or {}
        group = args.get("sweep") or group  # the runs of one sweep share a wandb group
        fp = state.get("fingerprint") if isinstance(state.get("fingerprint"), dict) else {}
        if fp.get("digest") or state.get("lineage"):  # lineage as config: searchable and shown in the web UI
            wandb_config = {
                **wandb_config,
                "ftmodel_fingerprint": fp.get("digest"),
                "ftmodel_lineage": state.get("lineage") or {},
            }
        # The run sentinel sees every row this tracker logs (`request_stop`: `[alerts] stop_on`).
        self._watch = None
        self._alerts_seen = 0
        if cfg.alerts.enabled:
            from ftmodel.sentinel import Facts, RunWatch

            facts = Facts.from_config(cfg, stage)
            self._watch = RunWatch(run, stage, cfg.alerts, facts, log=log, request_stop=request_stop)
        if self.mode != "disabled":
            self._start_wandb(cfg, ws, stage, run_name, tags, wandb_config, group)
        self.run.update_state(
            wandb={
                "mode": self.mode,
                "name": run_name,
                "id": getattr(self._wb_run, "id", None),
                "dir": getattr(self._wb_run, "dir", None) and str(Path(self._wb_run.dir).parent),
            }
        )

    def _start_wandb(self, cfg, ws, stage, run_name, tags, wandb_config, group) -> None:
        os.environ.update(wandb_environment(ws))
        for key in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
            Path(os.environ[key]).mkdir(parents=True, exist_ok=True)
        try:
            import wandb
        except ImportError:
            self._log("warning: wandb is not installed; metrics go to metrics.jsonl only")
            self.mode = "disabled"
            return
        try:
            self._wb_run = wandb.init(
                project=cfg.wandb.project,
                entity=cfg.wandb.entity or None,
                name=run_name,
                tags=tags,
                group=group,
                job_type=stage,
                config=wandb_config,
                dir=str(self.run.path),
                mode=self.mode,
                reinit="create_new",
                # quiet: no history sparklines at exit; stage.log stays readable
                settings=wandb.Settings(quiet=True),
            )
            self._wandb = wandb
        except Exception as e:  # wandb must never take a training run down with it
            self._log(t("warning: wandb could not start ({reason}); metrics go to metrics.jsonl only", reason=e))
            self.mode = "disabled"

    def log(self, metrics: dict[str, Any], step: int) -> dict:
        """Record one step's metrics in metrics.jsonl and the same values in wandb; return the row."""
        values = clean_metrics(metrics)
        if not values:
            return {}
        step = max(int(step), self.last_step)  # wandb needs monotonic steps; so do our readers
        self.last_step = step
        row = {"step": step, "time": round(time.time(), 3), **values}
        self._writer.write(row)
        if self._wb_run is not None:
            self._wb_run.log(values, step=step)
        if self._watch is not None:
            self._publish_alerts(self._watch.observe(row))
        return row

    def _publish_alerts(self, alerts: list) -> None:
        """Mirror alerts to the wandb run (offline too): `alerts/count`, `alerts/<rule>` (the English
        message and hint), `alerts/<rule>/step` in the summary, and an `alert:<rule>` tag."""
        if not alerts or self._wb_run is None:
            return
        self._alerts_seen += len(alerts)
        try:
            summary: dict[str, Any] = {"alerts/count": self._alerts_seen}
            for alert in alerts:
                summary[f"alerts/{alert.rule}"] = f"{alert.message}; try: {alert.hint}"
                summary[f"alerts/{alert.rule}/step"] = alert.step
            self._wb_run.summary.update(summary)
            tags = list(self._wb_run.tags or ())
            self._wb_run.tags = tuple(dict.fromkeys([*tags, *(f"alert:{a.rule}" for a in alerts)]))
        except Exception as e:  # wandb must never take a training run down with it
            self._log(t("warning: could not record alerts in wandb: {reason}", reason=e))

    def summary(self, values: dict[str, Any]) -> None:
        """Set final summary values (wandb summary; state.json `summary`)."""
        values = clean_metrics(values)
        self.run.update_state(summary=values)
        if self._wb_run is not None:
            self._wb_run.summary.update(values)

    def table(self, name: str, columns: list[str], rows: list[list]) -> None:
        """Log a table to wandb (the same rows are written by the stage to its JSON report)."""
        if self._wb_run is not None:
            self._wb_run.log({name: self._wandb.Table(columns=columns, data=rows)}, step=max(self.last_step, 0))

    def artifact(self, path: Path, name: str, kind: str) -> None:
        """Attach a file or directory to the wandb run as an artifact."""
        if self._wb_run is None:
            return
        art = self._wandb.Artifact(name=name, type=kind)
        if Path(path).is_dir():
            art.add_dir(str(path))
        else:
            art.add_file(str(path))
        self._wb_run.log_artifact(art)

    def finish(self, exit_code: int = 0) -> None:
        """Close metrics.jsonl and the wandb run."""
        self._writer.close()
        if self._watch is not None:  # alerts another process recorded since the last row (a stall)
            self._publish_alerts(self._watch.pending())
        if self._wb_run is not None:
            try:
                self._wb_run.finish(exit_code=exit_code)
            except Exception as e:
                self._log(t("warning: wandb finish failed: {reason}", reason=e))
            self._wb_run = None


class NullTracker:
    """The tracker of a non-main rank: rank 0 alone records, so every step is logged exactly once."""

    mode = "disabled"

    def log(self, metrics: dict[str, Any], step: int) -> dict:
        return {}

    def summary(self, values: dict[str, Any]) -> None:
        pass

    def table(self, name: str, columns: list[str], rows: list[list]) -> None:
        pass

    def artifact(self, path: Path, name: str, kind: str) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass
