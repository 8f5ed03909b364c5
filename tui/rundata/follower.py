"""Follow one run: tail its metrics.jsonl and stage.log by byte offset (owned by the polling worker)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from ftmodel.rundir import METRICS_FILE, MetricsReader, Run, parse_metric_lines
from ftmodel.sentinel import ALERTS_FILE, Alert
from tui.rundata.series import SERIES_CAPACITY, SeriesStore, columns_from_rows

# A run with more history than this is shown from a sample first (see RunFollower.read_history).
HISTORY_PREVIEW_BYTES = 2 << 20
# The exact pass parses this much at a time, then hands the interpreter over: in one go, 100,000
# rows hold it for most of a second and the console stops answering.
EXACT_CHUNK_BYTES = 1 << 20
# How long the exact pass waits for the screen to draw the preview (it is a refinement of it).
PREVIEW_WAIT = 5.0


class RunFollower:
    """Tail one run's metrics and log by byte offset (owned by the polling worker)."""

    LOG_TAIL_LINES = 200

    def __init__(self, run_path: Path, chunk_bytes: int = 8 << 20):
        self.run = Run(Path(run_path))
        self.metrics = MetricsReader(self.run.path / METRICS_FILE)
        self.chunk_bytes = chunk_bytes
        self.log_offset: int | None = None
        self._log_partial = b""
        self.alerts = MetricsReader(self.run.path / ALERTS_FILE)  # the sentinel's alerts: strict JSON lines too
        self._resets_seen = 0  # truncations of metrics.jsonl already told (see `truncated`)
        self.config_read = False  # the run's config snapshot has been read (for its config notes)
        self.preview_drawn = threading.Event()  # set by the screen once it has drawn a history's preview

    def read_metrics(self) -> list[dict]:
        """Return up to about `chunk_bytes` of new rows (callers loop for big backfills)."""
        return self.metrics.read_new(max_bytes=self.chunk_bytes)

    def truncated(self) -> bool:
        """Tell (once per event) whether metrics.jsonl was truncated or replaced since the last call:
        the rows shown so far are gone, and the rows read next start the run's history again."""
        seen, self._resets_seen = self._resets_seen, self.metrics.resets
        return self.metrics.resets != seen

    def caught_up(self) -> bool:
        """Tell whether the metrics file has been read to its end."""
        return self.metrics.offset >= _size(self.metrics.path)

    def history_pending(self) -> bool:
        """Tell whether a long history is still unread (the first read of a big metrics file)."""
        return self.metrics.offset == 0 and _size(self.metrics.path) > HISTORY_PREVIEW_BYTES

    def read_history(
        self,
        show: Callable[[SeriesStore, bool], None],
        cancelled: Callable[[], bool],
        capacity: int = SERIES_CAPACITY,
        preview_drawn: threading.Event | None = None,
    ) -> None:
        """Read the metrics file as it is now: `show(preview, False)` soon, then `show(exact, True)`.

        Parsing 100,000 rows takes most of a second, so a first pass only splits lines and keeps the
        ones a Series would keep (every stride-th, the stride doubling as they pile up, and the
        last): for metrics logged on every row, a chart drawn from the preview shows exactly the
        points it would show from the exact store. The second pass parses every line, which adds the metrics logged
        on only some rows, and replaces the preview. Both passes read in chunks: memory is bounded.
        With `preview_drawn`, the second pass starts once that event is set (the screen drew the
        preview; at most PREVIEW_WAIT seconds later), and it yields between chunks, so neither the
        first chart nor the keys wait for it.
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
        if preview_drawn is not None:
            deadline = time.monotonic() + PREVIEW_WAIT
            while not preview_drawn.wait(0.05) and time.monotonic() < deadline:
                if cancelled():
                    return
        exact = SeriesStore(capacity)
        chunk = self.chunk_bytes if preview_drawn is None else min(self.chunk_bytes, EXACT_CHUNK_BYTES)
        while self.metrics.offset < sampler.offset:  # the same bytes again, every line parsed
            if cancelled():
                return
            rows = self.metrics.read_new(max_bytes=min(chunk, sampler.offset - self.metrics.offset))
            exact.add_columns(columns_from_rows(rows), len(rows))
            if preview_drawn is not None:
                time.sleep(0)  # lets a waiting thread (the UI) take the interpreter now, not 5 ms later
        show(exact, True)

    def read_alerts(self) -> tuple[list[Alert], bool]:
        """Return the alerts recorded since the last call, and whether they replace all read before
        (alerts.jsonl was truncated or replaced). Torn or foreign lines are skipped."""
        resets = self.alerts.resets
        rows = self.alerts.read_new()
        return [a for a in map(Alert.from_json, rows) if a is not None], self.alerts.resets != resets

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
