"""The console's view layer: what screens show, computed from run directories (no Textual, no ML stack).

Everything here is plain Python so it can run in thread workers and be tested without a terminal:
bounded metric series, run summaries, result tables, GRPO health hints and nvidia-smi parsing.
"""

from __future__ import annotations

import os
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ftmodel.reports import result_tables as read_results  # noqa: F401 - the console's old name
from ftmodel.rundir import ACTIVE_STATES, METRICS_FILE, MetricsReader, Run, list_runs, parse_metric_lines
from ftmodel.words import PIPELINE  # noqa: F401 - one spelling, the engine's

REWARD_PARTS = ("reward", "format_reward", "accuracy_reward", "judge_reward")
SERIES_CAPACITY = 2048
# A run with more history than this is shown from a sample first (see RunFollower.read_history).
HISTORY_PREVIEW_BYTES = 2 << 20


class Series:
    """One metric's points, bounded: when full, every other point is dropped and the stride doubles.

    Stored point k is always the (k * stride)-th point ever seen, so halving keeps an even spread
    over the whole run; the most recent point is kept apart so a chart always reaches "now".
    """

    __slots__ = ("capacity", "stride", "count", "xs", "ys", "last")

    def __init__(self, capacity: int = SERIES_CAPACITY):
        self.capacity = max(4, capacity)
        self.stride = 1
        self.count = 0
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.last: tuple[float, float] | None = None

    def extend(self, xs: list[float], ys: list[float]) -> None:
        """Add points in step order (slicing keeps this fast for 100k-row backfills)."""
        if not xs:
            return
        start = (-self.count) % self.stride
        self.xs.extend(xs[start :: self.stride])
        self.ys.extend(ys[start :: self.stride])
        self.count += len(xs)
        self.last = (xs[-1], ys[-1])
        while len(self.xs) > self.capacity:
            self.xs = self.xs[::2]
            self.ys = self.ys[::2]
            self.stride *= 2

    def points(self, max_points: int) -> tuple[list[float], list[float]]:
        """Return at most about `max_points` points spread over the run, always ending at the latest."""
        xs, ys = self.xs, self.ys
        if max_points > 0 and len(xs) > max_points:
            step = -(-len(xs) // max_points)
            xs, ys = xs[::step], ys[::step]
        if self.last is not None and (not xs or xs[-1] != self.last[0]):
            xs, ys = [*xs, self.last[0]], [*ys, self.last[1]]
        return list(xs), list(ys)

    def recent(self, n: int) -> list[float]:
        """Return the last `n` stored values (for health hints)."""
        return self.ys[-n:]

    def __len__(self) -> int:
        return len(self.xs)


class SeriesStore:
    """Every metric of one run, each a bounded Series keyed by name."""

    def __init__(self, capacity: int = SERIES_CAPACITY):
        self.capacity = capacity
        self.series: dict[str, Series] = {}
        self.rows = 0
        self.version = 0  # bumped on every change: the redraw timer compares it

    def add_columns(self, columns: dict[str, tuple[list[float], list[float]]], rows: int) -> None:
        """Merge columns made by `columns_from_rows` into the store."""
        for name, (xs, ys) in columns.items():
            series = self.series.get(name)
            if series is None:
                series = self.series[name] = Series(self.capacity)
            series.extend(xs, ys)
        self.rows += rows
        if rows:
            self.version += 1

    def get(self, name: str) -> Series | None:
        return self.series.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.series


def columns_from_rows(rows: list[dict]) -> dict[str, tuple[list[float], list[float]]]:
    """Turn metric rows into per-metric (steps, values) columns, numbers only (done in workers)."""
    cols: dict[str, tuple[list[float], list[float]]] = {}
    for i, row in enumerate(rows):
        step = row.get("step", i)
        if not isinstance(step, (int, float)):
            continue
        for key, value in row.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if value != value:  # NaN: a gap, not a point
                continue
            col = cols.get(key)
            if col is None:
                col = cols[key] = ([], [])
            col[0].append(step)
            col[1].append(value)
    return cols


@dataclass
class RunSummary:
    """What the stage and run lists show about one run (read from its directory)."""

    id: str
    path: Path
    stage: str
    status: str
    step: int = 0
    total: int | None = None
    created: float | None = None
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    error: str | None = None
    group: str | None = None
    current: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATES


def summarize(run: Run) -> RunSummary:
    """Read one run's state.json (and whether its process lives) into a RunSummary."""
    state = run.read_state()
    if state.get("slurm_job_id"):  # the scheduler, not a local pid, knows whether it runs (or killed it)
        from ftmodel.launcher import run_status

        status = run_status(run)
    else:
        status = run.status()
    progress = state.get("progress") or {}
    return RunSummary(
        id=run.id,
        path=run.path,
        stage=state.get("stage", "?"),
        status=status,
        step=int(progress.get("step") or 0),
        total=progress.get("total"),
        created=state.get("created"),
        started=state.get("started"),
        ended=state.get("ended"),
        exit_code=state.get("exit_code"),
        error=state.get("error"),
        group=state.get("group"),
        current=state.get("current"),
    )


def scan_workspace(workspace: Path) -> list[RunSummary]:
    """Summarise every run of a workspace, oldest first."""
    out = []
    for run in list_runs(workspace):
        try:
            out.append(summarize(run))
        except (OSError, ValueError, TypeError):
            continue  # a run directory being created or removed right now
    return out


class RunFollower:
    """Tail one run's metrics and log by byte offset (owned by the polling worker)."""

    LOG_TAIL_LINES = 200

    def __init__(self, run_path: Path, chunk_bytes: int = 8 << 20):
        self.run = Run(Path(run_path))
        self.metrics = MetricsReader(self.run.path / METRICS_FILE)
        self.chunk_bytes = chunk_bytes
        self.log_offset: int | None = None
        self._log_partial = b""

    def read_metrics(self) -> list[dict]:
        """Return up to about `chunk_bytes` of new rows (callers loop for big backfills)."""
        return self.metrics.read_new(max_bytes=self.chunk_bytes)

    def caught_up(self) -> bool:
        """Tell whether the metrics file has been read to its end."""
        return self.metrics.offset >= _size(self.metrics.path)

    def history_pending(self) -> bool:
        """Tell whether a long history is still unread (the first read of a big metrics file)."""
        return self.metrics.offset == 0 and _size(self.metrics.path) > HISTORY_PREVIEW_BYTES

    def read_history(
        self, show: Callable[[SeriesStore, bool], None], cancelled: Callable[[], bool], capacity: int = SERIES_CAPACITY
    ) -> None:
        """Read the metrics file as it is now: `show(preview, False)` soon, then `show(exact, True)`.

        Parsing 100,000 rows takes most of a second, so a first pass only splits lines and keeps the
        ones a Series would keep (every stride-th, the stride doubling as they pile up, and the
        last): for metrics logged on every row, a chart drawn from the preview shows exactly the
        points it would show from the exact store. The second pass parses every line, which adds the metrics logged
        on only some rows, and replaces the preview. Both passes read in chunks: memory is bounded.
        """
        sampler = MetricsReader(self.metrics.path)
        kept: list[bytes] = []
        stride, n, last = 1, 0, b""
        while lines := sampler.read_new_lines(self.chunk_bytes):
            kept.extend(lines[(-n) % stride :: stride])
            n += len(lines)
            last = lines[-1]
            while len(kept) > capacity:
                kept, stride = kept[::2], stride * 2
            if cancelled():
                return
        if (n - 1) % stride:
            kept.append(last)
        preview = SeriesStore(capacity)
        preview.add_columns(columns_from_rows(parse_metric_lines(kept)), n)
        show(preview, False)
        exact = SeriesStore(capacity)
        while self.metrics.offset < sampler.offset:  # the same bytes again, every line parsed
            if cancelled():
                return
            rows = self.metrics.read_new(max_bytes=min(self.chunk_bytes, sampler.offset - self.metrics.offset))
            exact.add_columns(columns_from_rows(rows), len(rows))
        show(exact, True)

    def read_log(self) -> list[str]:
        """Return new complete log lines; the first call returns the last lines of the log."""
        path = self.run.log_path
        try:
            size = path.stat().st_size
        except OSError:
            return []
        if self.log_offset is None:
            self.log_offset = size
            lines = self.run.log_tail(self.LOG_TAIL_LINES)
            # log_tail includes a partial last line; the next read must not repeat it
            return lines
        if size < self.log_offset:
            self.log_offset, self._log_partial = 0, b""
        if size == self.log_offset:
            return []
        with open(path, "rb") as fh:
            fh.seek(self.log_offset)
            data = fh.read(4 << 20)
        self.log_offset += len(data)
        data = self._log_partial + data
        parts = data.split(b"\n")
        self._log_partial = parts.pop()
        # Progress bars rewrite one line with \r: show only its last state.
        return [p.decode("utf-8", "replace").rsplit("\r", 1)[-1] for p in parts]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def config_beta(run_path: Path) -> float | None:
    """Return grpo.beta from the run's config snapshot (None if unreadable)."""
    try:
        with open(Path(run_path) / "config.toml", "rb") as fh:
            return float(tomllib.load(fh).get("grpo", {}).get("beta"))
    except (OSError, ValueError, TypeError, tomllib.TOMLDecodeError):
        return None


def health_hints(stage: str, store: SeriesStore, beta: float | None) -> list[str]:
    """Return GRPO health warnings for a run's metrics."""
    if stage != "grpo":
        return []
    hints = []
    zero_std = store.get("frac_reward_zero_std")
    if zero_std is not None and len(zero_std):
        recent = zero_std.recent(20)
        if sum(v >= 0.8 for v in recent) > len(recent) / 2:
            accuracy = store.get("accuracy_reward")
            right = accuracy.recent(5) if accuracy is not None else []
            mean = sum(right) / len(right) if right else None
            if mean is not None and mean >= 0.9:
                hints.append("little signal left: most groups are all right (these prompts are learned)")
            elif mean is not None and mean <= 0.1:
                hints.append("no learning signal: most groups are all wrong (SFT more, or easier prompts)")
            else:
                hints.append("no learning signal: most groups have identical rewards")
    clipped = store.get("completions/clipped_ratio")
    if clipped is not None and clipped.last is not None and clipped.last[1] >= 0.3:
        hints.append("many completions clipped: raise grpo.max_completion_length")
    if "kl_divergence" not in store and "kl" not in store and beta == 0:
        hints.append("no KL: grpo.beta is 0")
    return hints


def speed_and_eta(
    summary: RunSummary, store: SeriesStore, now: float | None = None
) -> tuple[float | None, float | None]:
    """Return (steps per second, seconds left) from logged step times, else from state progress."""
    now = time.time() if now is None else now
    rate = None
    times = store.get("time")
    if times is not None and len(times) >= 2 and times.last is not None:
        # Rate over the recent stored window: stored points are spread evenly over the run.
        k = max(0, len(times.xs) - 16)
        x0, t0 = times.xs[k], times.ys[k]
        x1, t1 = times.last
        if t1 > t0 and x1 > x0:
            rate = (x1 - x0) / (t1 - t0)
    if rate is None and summary.started and summary.step:
        end = summary.ended or now
        if end > summary.started:
            rate = summary.step / (end - summary.started)
    eta = None
    if rate and summary.total and summary.active:
        eta = max(0.0, (summary.total - summary.step) / rate)
    return rate, eta


def fmt_duration(seconds: float | None) -> str:
    """Format seconds as `1h02m`, `3m05s` or `42s`."""
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


@dataclass
class GpuSample:
    """One GPU's utilisation and memory."""

    index: int
    util: float
    mem_used: float
    mem_total: float


def parse_nvidia_smi(text: str) -> list[GpuSample]:
    """Parse `nvidia-smi --query-gpu=index,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits`."""
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4:
            continue
        try:
            out.append(GpuSample(int(parts[0]), float(parts[1]), float(parts[2]), float(parts[3])))
        except ValueError:
            continue  # "[N/A]" on some boards
    return out


@dataclass
class StageRow:
    """One line of the stage list: a stage and its latest run."""

    stage: str
    latest: RunSummary | None = None
    runs: list[RunSummary] = field(default_factory=list)


def stage_rows(stages: tuple[str, ...], runs: list[RunSummary]) -> list[StageRow]:
    """Group runs by stage (newest first within each stage)."""
    rows = {s: StageRow(s) for s in stages}
    for run in runs:
        row = rows.get(run.stage)
        if row is not None:
            row.runs.insert(0, run)
    for row in rows.values():
        row.latest = row.runs[0] if row.runs else None
    return list(rows.values())


def env_no_color() -> bool:
    """Tell whether the user asked for no colour (https://no-color.org)."""
    return bool(os.environ.get("NO_COLOR"))


def stage_argv(stage: str, config_path, workspace, overrides=(), extra=()) -> list[str]:
    """The command line a run records for a console launch (the one place it is built)."""
    argv = ["ftmodel", stage, "--config", str(config_path), "--workspace", str(workspace)]
    for spec in overrides:
        argv += ["--set", spec]
    return [*argv, *extra]
