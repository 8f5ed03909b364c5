"""Read the engine's result files for every reader (CLI, console): eval reports and ablation summaries.

`eval_<variant>.json` holds totals and accuracies, overall and per question type;
`ablation_summary_<time>.json` holds one such report per variant plus a ready table. Stdlib only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ftmodel.i18n import t
from ftmodel.words import VARIANT_PREFIX, VARIANTS  # noqa: F401 - re-exported for readers

ResultTable = tuple[str, list[str], list[list[str]]]  # title, columns, rows (cells as text)


def result_tables(run_path: Path) -> list[ResultTable]:
    """Return result tables (title, columns, rows) from a run's eval_*.json and ablation_summary_*.json."""
    tables = []
    run_path = Path(run_path)
    for path in sorted(run_path.glob("eval_*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or "total" not in data:
            continue
        per_qtype = data.get("per_qtype")
        per_qtype = per_qtype if isinstance(per_qtype, dict) else {}  # a report is a file: any shape
        cols = ["qtype", "n", "format", "answer", "majority"]
        rows = [
            [
                "all",
                _fmt(data.get("total")),
                _fmt(data.get("format_accuracy")),
                _fmt(data.get("answer_accuracy")),
                _fmt(data.get("majority_baseline")),
            ]
        ]
        for qtype, d in sorted(per_qtype.items()):
            if not isinstance(d, dict):
                continue
            rows.append(
                [
                    qtype,
                    _fmt(d.get("total")),
                    _fmt(d.get("format_accuracy")),
                    _fmt(d.get("answer_accuracy")),
                    _fmt(d.get("majority_baseline")),
                ]
            )
        tables.append((path.name, cols, rows))
    for path in sorted(run_path.glob("ablation_summary_*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            table = data["table"]
            cols = [str(c) for c in table["columns"]]
            # Every row as wide as the header: a short one padded, a long one cut, a non-list left out.
            width = len(cols)
            rows = [[_fmt(v) for v in (*r, *[None] * width)[:width]] for r in table["rows"] if isinstance(r, list)]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        tables.append((path.name, cols, rows))
    return tables


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):  # nan and inf as such; an absurd magnitude in a few cells
        return f"{value:.3f}" if abs(value) < 1e15 else f"{value:.4g}"
    if isinstance(value, int) and not -(10**15) < value < 10**15:
        return f"{value:.4g}" if abs(value) < 2**1023 else "huge"
    return str(value)


@dataclass
class AblationMatrix:
    """Question type × (format, answer) accuracy per variant, with deltas against the base model."""

    source: Path
    variants: list[str]
    rows: list[tuple[str, int, dict[str, tuple[float, float]]]]  # qtype, total, {variant: (fmt, ans)}

    def columns(self) -> list[str]:
        cols = ["qtype", "n"]
        for v in self.variants:
            cols += [f"{v} fmt", f"{v} ans"]
        return cols

    def cell(self, variant: str, values: dict, index: int) -> str:
        v = values[variant][index]
        text = f"{v:.2f}"
        if variant != "base" and "base" in values:
            delta = v - values["base"][index]
            text += f" ({delta:+.2f})"
        return text

    def table(self) -> list[list[str]]:
        return [
            [q, str(n), *[self.cell(v, vals, i) for v in self.variants for i in (0, 1)]] for q, n, vals in self.rows
        ]

    def markdown(self) -> str:
        cols = self.columns()
        lines = [
            f"# Ablation: {self.source.parent.name}",
            "",
            "Format / answer accuracy per question type; deltas in brackets are against `base`.",
            "",
            "| " + " | ".join(cols) + " |",
            "|" + "|".join("---" for _ in cols) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.table()]
        return "\n".join(lines) + "\n"


def read_ablation(run_path: Path) -> AblationMatrix | None:
    """Build the matrix from a run's newest ablation_summary_*.json (None when it has none)."""
    summaries = sorted(Path(run_path).glob("ablation_summary_*.json"))
    if not summaries:
        return None
    data = json.loads(summaries[-1].read_text(encoding="utf-8"))
    try:
        return _ablation_matrix(summaries[-1], data)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, OverflowError) as e:
        # A summary is a file: any shape may come. Say which file is wrong, as one ValueError.
        raise ValueError(
            t("{name} is malformed ({kind}: {reason})", name=summaries[-1].name, kind=type(e).__name__, reason=e)
        ) from None


def _ablation_matrix(source: Path, data: dict) -> AblationMatrix:
    results = data["variants"]
    variants = [v for v in results]
    first = results[variants[0]]
    rows = []
    for qtype in [*sorted(first.get("per_qtype", {})), "overall"]:
        vals = {}
        for v in variants:
            r = results[v] if qtype == "overall" else results[v]["per_qtype"].get(qtype, {})
            vals[v] = (float(r.get("format_accuracy") or 0.0), float(r.get("answer_accuracy") or 0.0))
        total = (first if qtype == "overall" else first["per_qtype"][qtype]).get("total", 0)
        rows.append((qtype, int(total or 0), vals))
    return AblationMatrix(source, variants, rows)
