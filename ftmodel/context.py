"""What a running stage sees: its run directory, config, workspace, arguments, logger and tracker."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftmodel.config import Config
from ftmodel.errors import Cancelled, FtmodelError
from ftmodel.rundir import Run
from ftmodel.workspace import Workspace

PARTIAL_ITEMS = 20  # missing ids a partial mark names (enough to look one up; the count says the rest)


class StageError(FtmodelError, RuntimeError):
    """A problem the user can fix, reported as one clear message (never a traceback)."""


@dataclass
class StageContext:
    """Everything one stage run needs, built by the worker from the run directory."""

    run: Run
    cfg: Config
    ws: Workspace
    stage: str
    args: dict = field(default_factory=dict)
    rank: int = 0  # with several processes, only rank 0 writes state.json, metrics.jsonl and wandb
    stop_requested: bool = False
    stop_reason: str | None = None  # why, when not a plain stop request (the sentinel's `[alerts] stop_on`)
    launch: Any = None  # launcher.launch, set by the worker: the pipeline starts its stages with it
    contract_of: Any = None  # launcher.stage_contract, set by the worker: the pipeline plans its stages with it
    _last_progress: float = 0.0
    _trackers: list = field(default_factory=list)
    _partial: list = field(default_factory=list)

    def log(self, message: str) -> None:
        """Write a timestamped line to the stage's log."""
        print(f"{time.strftime('%H:%M:%S')} [{self.stage}] {message}", file=sys.stdout, flush=True)

    @property
    def is_main(self) -> bool:
        """Whether this process is the one that records the run (rank 0)."""
        return self.rank == 0

    def progress(self, step: int, total: int | None, *, force: bool = False) -> None:
        """Record progress in state.json (at most about once a second, and always at the end)."""
        if not self.is_main:
            return
        now = time.monotonic()
        if force or step == total or now - self._last_progress >= 1.0:
            self._last_progress = now
            # progress_at: when the stage last moved (the sentinel's stall check reads it)
            self.run.update_state(progress={"step": int(step), "total": total}, progress_at=round(time.time(), 3))

    def request_stop(self, reason: str) -> None:
        """Ask the stage to save and stop, as a first SIGINT does, saying why (the run ends `cancelled`
        with `reason` as its error)."""
        if self.stop_requested:
            return
        self.stop_requested, self.stop_reason = True, reason
        self.log(f"{reason}: saving and exiting")

    def check_stop(self) -> None:
        """Raise Cancelled if a stop was requested (called between units of work)."""
        if self.stop_requested:
            raise Cancelled()

    def run_name(self, prefix: str | None = None, *, sep: str = "-") -> str:
        """Name a wandb run as the original project did: `<prefix>-20260120-143022`."""
        return f"{prefix or self.stage}-{timestamp(sep)}"

    def tracker(self, *, run_name: str, tags: list[str], wandb_config: dict):
        """Open this run's metrics tracker (metrics.jsonl, mirrored to wandb); a no-op one off rank 0."""
        from ftmodel.tracking import NullTracker, Tracker

        if not self.is_main:
            return NullTracker()

        tracker = Tracker(
            self.run,
            self.cfg,
            self.ws,
            stage=self.stage,
            run_name=run_name,
            tags=tags,
            wandb_config=wandb_config,
            group=self.run.read_state().get("group"),
            log=self.log,
            request_stop=self.request_stop,
        )
        self._trackers.append(tracker)
        return tracker

    def close_trackers(self, exit_code: int) -> None:
        """Finish every tracker this run opened."""
        for tracker in self._trackers:
            tracker.finish(exit_code)
        self._trackers.clear()

    def mark_partial(
        self, reason: str, *, missing: int, total: int | None = None, retry: str, items: list | tuple = ()
    ) -> None:
        """Record in state.json that this run ends with less than it was asked for, so it is never reused as whole.

        `reason` says what is missing ("the teacher failed on 1 of 10 items"), `retry` what a rerun
        does about it ("fetch the missing ones"), `items` names the first missing ids. Called again,
        the marks add up (an ablation's variants each missing judge scores). Written before the run
        can be recorded `finished`, so no reader ever sees it whole.
        """
        if not self.is_main:
            return
        self._partial.append(
            {
                "reason": reason,
                "missing": int(missing),
                "total": total,
                "retry": retry,
                "items": [str(i) for i in items][:PARTIAL_ITEMS],
            }
        )
        marks = self._partial
        totals = [m["total"] for m in marks]
        self.run.update_state(
            partial={
                "reason": "; ".join(m["reason"] for m in marks),
                "missing": sum(m["missing"] for m in marks),
                "total": None if None in totals else sum(totals),
                "retry": "; ".join(dict.fromkeys(m["retry"] for m in marks)),
                "items": [i for m in marks for i in m["items"]][:PARTIAL_ITEMS],
            }
        )
        self.log(f"partial: {marks[-1]['reason']} (a rerun will {retry})")

    def output(self, **paths: str | Path) -> None:
        """Record the run's outputs (artifact paths) in state.json."""
        if self.is_main:
            self.run.update_state(outputs={k: str(v) for k, v in paths.items()})


def timestamp(sep: str = "-") -> str:
    """Timestamp used in run names, e.g. 20260120-143022 (ablation uses `_`)."""
    return time.strftime(f"%Y%m%d{sep}%H%M%S")
