"""A GRPO run's sampled completions with their rewards (completions.jsonl), for the completions browser."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ftmodel.rundir import parse_metric_lines, restore_nonfinite


@dataclass
class Completion:
    """One sampled GRPO completion with its rewards."""

    step: int
    question: str
    answer: str
    qtype: str
    completion: str
    rewards: dict[str, float]

    @property
    def total(self) -> float:
        """The sum of the numeric rewards (NaN ones left out; an int too big for a float counts as inf)."""
        return sum(_as_float(v) for v in self.rewards.values() if isinstance(v, (int, float)) and v == v)

    def matches(self, qtype: str | None, zero_only: bool, text: str) -> bool:
        if qtype and self.qtype != qtype:
            return False
        if zero_only and self.total != 0:
            return False
        if text:
            t = text.lower()
            return t in self.completion.lower() or t in self.question.lower()
        return True


def _as_float(value) -> float:
    try:
        return float(value)
    except OverflowError:  # an int beyond any float
        return math.inf if value > 0 else -math.inf


def _step(value) -> int:
    """A row's step as an int (0 when it is not a whole number: the file is the model's run's, any shape)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def read_completions(run_path: Path) -> list[Completion]:
    """Every row of a GRPO run's completions.jsonl (corrupt lines skipped)."""
    try:
        lines = (Path(run_path) / "completions.jsonl").read_bytes().split(b"\n")
    except OSError:
        return []
    return [
        Completion(
            _step(row.get("step")),
            str(row.get("question") or ""),
            str(row.get("answer") or ""),
            str(row.get("qtype") or ""),
            str(row.get("completion") or ""),
            {str(k): restore_nonfinite(v) for k, v in rewards.items()},
        )
        for row in parse_metric_lines(lines)
        for rewards in [row.get("rewards") if isinstance(row.get("rewards"), dict) else {}]
    ]
