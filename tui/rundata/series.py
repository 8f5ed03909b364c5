"""Bounded metric series: what a chart draws, built in workers from metrics.jsonl rows."""

from __future__ import annotations

SERIES_CAPACITY = 2048


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
