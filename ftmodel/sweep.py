"""Sweeps: a grid of config values, planned and validated point by point, queued as pipeline jobs,
and read back as one comparison table (CSV and Markdown in `<workspace>/sweeps/<id>/`).

Each grid point is one queue job: the `pipeline` stage over the sweep's stages, with the point's
values as `--set` overrides. Stages whose inputs did not change between points are reused (a sweep
over a GRPO key runs SFT once). Every point's runs carry the sweep id, their wandb `group`.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from ftmodel.errors import FtmodelError
from ftmodel.i18n import t
from ftmodel.rundir import atomic_write_text, find_run

SWEEPS_DIR = "sweeps"


class SweepError(FtmodelError):
    """A sweep that cannot be planned or read (a bad point, an unknown sweep)."""


@dataclass
class Point:
    """One grid point: its values, the `--set` overrides and the command that runs it."""

    values: dict
    overrides: list[str]
    command: list[str]


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def plan(
    config_path: str | Path, grid: dict[str, list], stages: list[str], *, base_overrides: list[str] = ()
) -> list[Point]:
    """Expand the grid into points and validate each one as the config it will run (all before any queues)."""
    from ftmodel import config as config_mod

    if not grid:
        raise SweepError(t("the sweep has no grid: give --grid section.key=v1,v2 or a [sweep] table"))
    keys = list(grid)
    points = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo))
        overrides = [*base_overrides, *(f"{k}={_toml_value(v)}" for k, v in values.items())]
        try:
            config_mod.load(config_path, overrides)
        except config_mod.ConfigError as e:
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
            raise SweepError(t("grid point {point}: {error}", point=shown, error=e)) from None
        command = [
            "ftmodel",
            "pipeline",
            "--stages",
            ",".join(stages),
            "--config",
            str(config_path),
            *itertools.chain.from_iterable(("--set", o) for o in overrides),
        ]
        points.append(Point(values, overrides, command))
    return points


def new_sweep_id() -> str:
    return f"sweep-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def sweep_dir(ws: str | Path, sweep_id: str) -> Path:
    return Path(ws) / SWEEPS_DIR / sweep_id


def queue_sweep(
    ws: str | Path,
    config_path: str | Path,
    points: list[Point],
    stages: list[str],
    *,
    force: bool = False,
    no_judge: bool = False,
) -> tuple[str, list[dict]]:
    """Record the sweep and queue one pipeline job per point; return (sweep id, jobs)."""
    from ftmodel.queue import JobSpec, add_jobs

    sweep_id = new_sweep_id()
    text = Path(config_path).read_text(encoding="utf-8")
    args = {"stages": ",".join(stages), **({"no_judge": True} if no_judge else {})}
    specs = [
        JobSpec(
            "pipeline",
            text,
            p.overrides,
            args,
            sweep=sweep_id,
            point=p.values,
            force=force,
            label=", ".join(f"{k}={v}" for k, v in p.values.items()),
        )
        for p in points
    ]
    d = sweep_dir(ws, sweep_id)
    d.mkdir(parents=True, exist_ok=True)
    jobs = add_jobs(ws, specs)
    atomic_write_text(
        d / "sweep.json",
        json.dumps(
            {
                "id": sweep_id,
                "created": time.time(),
                "config": str(config_path),
                "stages": stages,
                "keys": list(points[0].values) if points else [],
                "points": [
                    {"values": p.values, "overrides": p.overrides, "job": j["id"]} for p, j in zip(points, jobs)
                ],
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n",
    )
    return sweep_id, jobs


def list_sweeps(ws: str | Path) -> list[str]:
    root = Path(ws) / SWEEPS_DIR
    return sorted(p.name for p in root.iterdir() if (p / "sweep.json").exists()) if root.is_dir() else []


def load_sweep_record(ws: str | Path, sweep_id: str) -> dict:
    matches = [s for s in list_sweeps(ws) if s == sweep_id or s.startswith(sweep_id)]
    if len(matches) != 1:
        raise SweepError(
            t("no sweep {sweep!r} in {path}", sweep=sweep_id, path=Path(ws) / SWEEPS_DIR)
            if not matches
            else t("sweep id {sweep!r} is ambiguous: {matches}", sweep=sweep_id, matches=", ".join(matches))
        )
    try:
        return json.loads((sweep_dir(ws, matches[0]) / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SweepError(t("cannot read sweep {sweep}: {reason}", sweep=matches[0], reason=e)) from None


def _eval_report(ws: Path, pipeline_run_id: str | None) -> dict | None:
    """The evaluation summary of a point's pipeline run (its evaluate child's eval_*.json)."""
    if not pipeline_run_id:
        return None
    try:
        run = find_run(ws, pipeline_run_id)
    except LookupError:
        return None
    for child in reversed(run.read_state().get("children") or []):
        try:
            child_run = find_run(ws, child)
        except LookupError:
            continue
        if child_run.read_state().get("stage") != "evaluate":
            continue
        reports = sorted(child_run.path.glob("eval_*.json"))
        if reports:
            try:
                return json.loads(reports[-1].read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
    return None


def comparison(ws: str | Path, sweep_id: str) -> tuple[list[str], list[list], int | None]:
    """The sweep's table: (columns, rows, index of the best row or None). Best = highest answer_accuracy."""
    ws = Path(ws)
    rec = load_sweep_record(ws, sweep_id)
    try:
        return _comparison(ws, rec)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
        # sweep.json and the runs' eval reports are files: a wrong shape is named, never a traceback.
        name = rec.get("id", sweep_id) if isinstance(rec, dict) else sweep_id
        raise SweepError(
            t(
                "sweep {sweep} cannot be compared: a malformed record or report ({kind}: {reason})",
                sweep=name,
                kind=type(e).__name__,
                reason=e,
            )
        ) from None


def _comparison(ws: Path, rec: dict) -> tuple[list[str], list[list], int | None]:
    from ftmodel.queue import read_queue

    jobs = {j["id"]: j for j in read_queue(ws)["jobs"]}
    reports = []
    qtypes: list[str] = []
    for point in rec["points"]:
        job = jobs.get(point["job"], {})
        report = _eval_report(ws, job.get("run_id")) if job.get("state") == "done" else None
        reports.append((point, job, report))
        for q in (report or {}).get("per_qtype", {}):
            if q not in qtypes:
                qtypes.append(q)
    keys = rec.get("keys") or []
    columns = [
        "best",
        *keys,
        "state",
        "answer_accuracy",
        "format_accuracy",
        *(f"{q}/answer_accuracy" for q in qtypes),
        "run",
    ]
    rows, scores = [], []
    for point, job, report in reports:
        rep = report or {}
        per = rep.get("per_qtype") or {}
        rows.append(
            [
                "",
                *(point["values"].get(k) for k in keys),
                job.get("state", "removed"),
                rep.get("answer_accuracy"),
                rep.get("format_accuracy"),
                *((per.get(q) or {}).get("answer_accuracy") for q in qtypes),
                job.get("run_id") or "",
            ]
        )
        scores.append(rep.get("answer_accuracy"))
    best = None
    valid = [(s, i) for i, s in enumerate(scores) if isinstance(s, (int, float))]
    if valid:
        best = max(valid)[1]
        rows[best][0] = "*"
    return columns, rows, best


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def write_tables(ws: str | Path, sweep_id: str) -> tuple[Path, Path, str]:
    """Write the comparison as CSV and Markdown into the sweep's directory; return (csv, md, text table)."""
    from ftmodel.textio import format_table

    rec = load_sweep_record(ws, sweep_id)
    columns, rows, _ = comparison(ws, sweep_id)
    d = sweep_dir(ws, rec["id"])
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    w.writerows([["" if v is None else v for v in r] for r in rows])
    csv_path, md_path = d / "comparison.csv", d / "comparison.md"
    atomic_write_text(csv_path, buf.getvalue())
    md = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in r) + " |" for r in rows]
    atomic_write_text(md_path, f"# {rec['id']}\n\n" + "\n".join(md) + "\n\n`*`: best answer_accuracy\n")
    text = format_table(columns, rows, float_format="{:.4f}")
    return csv_path, md_path, text
