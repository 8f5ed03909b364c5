"""Bounded metric series: what a chart draws, built in workers from metrics.jsonl rows."""

from __future__ import annotations

SERIES_CAPACITY = 2048

# Charts draw values within ±DRAW_LIMIT and steps within [-DRAW_LIMIT, DRAW_LIMIT]: plotext's axis ticks
# overflow near 1e308, and a diverged run's 1e300 would flatten every other point anyway. What lies
# beyond is drawn at the edge and noted, never dropped silently; tables show the real number.
DRAW_LIMIT = 1e15
_BIG_INT = 2**1023  # an int beyond this cannot become a float (JSON allows any size)


class NonFinite:
    """Where a metric was not a finite number: the first and last step, and how many points."""

    __slots__ = ("first", "last", "count")

    def __init__(self, step: float):
        self.first = self.last = step
        self.count = 0

    def __repr__(self) -> str:
        return f"NonFinite(first={self.first}, last={self.last}, count={self.count})"


def value_kind(value: float) -> str:
    """Which kind of not-drawable value this is: `nan`, `inf`, `-inf`, or `huge` (finite beyond DRAW_LIMIT)."""
    if value != value:
        return "nan"
    if value - value != 0:
        return "inf" if value > 0 else "-inf"
    return "huge"


def drawable(value: float) -> float | None:
    """The value a chart draws: None for NaN and ±inf (marked instead), clamped to ±DRAW_LIMIT."""
    if value - value != 0:  # NaN or ±inf
        return None
    return DRAW_LIMIT if value > DRAW_LIMIT else -DRAW_LIMIT if value < -DRAW_LIMIT else value


class Series:
    """One metric's points, bounded: when full, every other point is dropped and the stride doubles.

    Stored point k is always the (k * stride)-th point ever seen, so halving keeps an even spread
    over the whole run; the most recent point is kept apart so a chart always reaches "now". Points
    are kept in the order the file holds them (a step may repeat or go backwards). Values that are
    NaN, ±inf or beyond ±DRAW_LIMIT are stored like any other, and every one seen is noted in
    `notes` (kind -> NonFinite), so the chart can mark them and the status can say so.
    """

    __slots__ = ("capacity", "stride", "count", "xs", "ys", "last", "notes")

    def __init__(self, capacity: int = SERIES_CAPACITY):
        self.capacity = max(4, capacity)
        self.stride = 1
        self.count = 0
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.last: tuple[float, float] | None = None
        self.notes: dict[str, NonFinite] = {}

    def extend(self, xs: list[float], ys: list[float]) -> None:
        """Add points in the file's order (slicing keeps this fast for 100k-row backfills)."""
        if not xs:
            return
        # Three passes in C tell whether any value needs a note (a sum is NaN or inf when one is):
        # the Python loop runs only for a chunk that holds one.
        total = sum(ys)
        if total - total != 0 or max(ys) > DRAW_LIMIT or min(ys) < -DRAW_LIMIT:
            self._note(xs, ys)
        start = (-self.count) % self.stride
        self.xs.extend(xs[start :: self.stride])
        self.ys.extend(ys[start :: self.stride])
        self.count += len(xs)
        self.last = (xs[-1], ys[-1])
        while len(self.xs) > self.capacity:
            self.xs = self.xs[::2]
            self.ys = self.ys[::2]
            self.stride *= 2

    def _note(self, xs: list[float], ys: list[float]) -> None:
        for x, y in zip(xs, ys):
            if y - y == 0 and -DRAW_LIMIT <= y <= DRAW_LIMIT:
                continue
            kind = value_kind(y)
            note = self.notes.get(kind)
            if note is None:
                note = self.notes[kind] = NonFinite(x)
            note.last = x
            note.count += 1

    def points(self, max_points: int) -> tuple[list[float], list[float]]:
        """Return at most about `max_points` drawable points spread over the run, ending at the latest.

        NaN and ±inf are left out (the chart marks them from `notes`); values beyond ±DRAW_LIMIT are
        drawn at the limit.
        """
        xs, ys = self.xs, self.ys
        if max_points > 0 and len(xs) > max_points:
            step = -(-len(xs) // max_points)
            xs, ys = xs[::step], ys[::step]
        if self.last is not None and (not xs or xs[-1] != self.last[0]):
            xs, ys = [*xs, self.last[0]], [*ys, self.last[1]]
        if not self.notes:
            return list(xs), list(ys)
        shown_x, shown_y = [], []
        for x, y in zip(xs, ys):
            y = drawable(y)
            if y is not None:
                shown_x.append(x)
                shown_y.append(y)
        return shown_x, shown_y

    def recent(self, n: int) -> list[float]:
        """Return the last `n` stored finite values (for health hints)."""
        recent = self.ys[-n:]
        return [y for y in recent if y - y == 0] if self.notes else recent

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

    def notes(self) -> list[tuple[str, str, NonFinite]]:
        """Every (metric, kind, where) of a value a chart cannot draw as it is, metrics in name order."""
        return [(name, kind, note) for name, s in sorted(self.series.items()) for kind, note in s.notes.items()]

    def __contains__(self, name: str) -> bool:
        return name in self.series


def columns_from_rows(rows: list[dict]) -> dict[str, tuple[list[float], list[float]]]:
    """Turn metric rows into per-metric (steps, values) columns, numbers only (done in workers).

    Rows are untrusted: a row whose step is not a number within ±DRAW_LIMIT (a string, a bool, NaN)
    has no place on a chart and is left out; values that are not numbers (text, lists, null, bools,
    an int too big for a float) are left out; NaN and ±inf are kept, for the Series to note.
    """
    cols: dict[str, tuple[list[float], list[float]]] = {}
    for i, row in enumerate(rows):
        step = row.get("step", i)
        kind = type(step)  # exact types: bool is not a step, JSON gives exact int and float
        if (kind is not int and kind is not float) or not -DRAW_LIMIT <= step <= DRAW_LIMIT:
            continue
        for key, value in row.items():
            if key == "step":
                continue
            kind = type(value)  # a float may be NaN or ±inf: kept, the Series notes where they are
            if kind is not float and (kind is not int or not -_BIG_INT < value < _BIG_INT):
                continue  # text, lists, null, bools, an int too big for a float: not a point
            col = cols.get(key)
            if col is None:
                col = cols[key] = ([], [])
            col[0].append(step)
            col[1].append(value)
    return cols
