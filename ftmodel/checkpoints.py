"""Which checkpoint of a training run to load: `--checkpoint best|last|STEP`, and the run's record of
its best step (`best.json`).

`last` is the run's final adapter (`<run>/adapter`, what evaluate, export and GRPO have always
loaded); `best` is the checkpoint the probe scored best (`best.json`); a number is that step's
`checkpoints/checkpoint-N`. Stdlib only: the CLI checks a choice before any model loads.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ftmodel.context import StageError
from ftmodel.i18n import t
from ftmodel.rundir import ADAPTER_DIR, is_run_name
from ftmodel.textio import write_json

BEST_FILE = "best.json"
CHECKPOINTS_DIR = "checkpoints"


def parse_checkpoint(value) -> str:
    """Return a `--checkpoint` value in its normal form (`best`, `last` or digits); raise ValueError naming it."""
    text = str(value).strip().lower()
    if text in ("best", "last") or (text.isdigit() and int(text) >= 0):
        return str(int(text)) if text.isdigit() else text
    raise ValueError(t("{value} is not best, last or a step number", value=repr(value)))


def checkpoint_path(run_dir: Path, step: int) -> Path:
    """Where a run keeps the checkpoint of `step`."""
    return Path(run_dir) / CHECKPOINTS_DIR / f"checkpoint-{step}"


def saved_steps(run_dir: Path) -> list[int]:
    """The steps of the complete checkpoints a run holds, oldest first."""
    steps = []
    for path in (Path(run_dir) / CHECKPOINTS_DIR).glob("checkpoint-*"):
        tail = path.name.rsplit("-", 1)[-1]
        if tail.isdigit() and (path / "adapter_config.json").is_file():
            steps.append(int(tail))
    return sorted(steps)


def read_best(run_dir: Path) -> dict | None:
    """The run's best-checkpoint record, or None when it has none (or it cannot be read as one)."""
    try:
        best = json.loads((Path(run_dir) / BEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(best, dict) or not isinstance(best.get("step"), int) or isinstance(best.get("step"), bool):
        return None
    return best


def write_best(
    run_dir: Path, *, step: int, metric: str, mode: str, value: float, history: list[dict], run: str | None = None
) -> dict:
    """Record the best step atomically (a reader sees the old record or the whole new one). `run` names
    the run whose checkpoint it is when that is an earlier run this one resumed (its checkpoint stays there)."""
    run_dir = Path(run_dir)
    run = run or run_dir.name
    folder = Path(CHECKPOINTS_DIR) / f"checkpoint-{step}"
    record = {
        "step": step,
        "run": run,
        "metric": metric,
        "mode": mode,
        "value": value,
        "checkpoint": str(folder if run == run_dir.name else Path("..") / run / folder),
        "history": history,
    }
    write_json(run_dir / BEST_FILE, record)
    return record


def best_run(run_dir: Path, best: dict) -> str:
    """The run whose checkpoint a best record names: an earlier run a resume continued, else this one."""
    run = best.get("run")
    return run if is_run_name(run) else Path(run_dir).name


def best_checkpoint_dir(run_dir: Path, best: dict) -> Path:
    """Where the checkpoint a best record names lives: in this run, or in the earlier run it came from
    (a sibling run directory; a resumed run's checkpoints of before the resume stay there)."""
    run_dir = Path(run_dir)
    owner = best_run(run_dir, best)
    return checkpoint_path(run_dir if owner == run_dir.name else run_dir.parent / owner, best["step"])


def carried_best(run_dir: Path, earlier_dir: Path, *, metric: str, mode: str) -> tuple[dict | None, list[dict], str]:
    """What a resumed run (`run_dir`) takes over from the run it continues (`earlier_dir`): the earlier
    best record if its checkpoint is still on disk (else None), the earlier probe history with each step's
    run named, and a line saying what was carried. Nothing is carried when the metric or mode differ:
    their numbers do not compare."""
    earlier_dir = Path(earlier_dir)
    best = read_best(earlier_dir)
    if best is None:
        return None, [], t("probe: run {run} recorded no best checkpoint; the best starts here", run=earlier_dir.name)
    if (best.get("metric"), best.get("mode")) != (metric, mode):
        return (
            None,
            [],
            t(
                "probe: run {run} ranked its checkpoints by {old} ({old_mode}), this run by {new} ({new_mode}): "
                "their numbers do not compare, so the best starts here",
                run=earlier_dir.name,
                old=best.get("metric"),
                old_mode=best.get("mode"),
                new=metric,
                new_mode=mode,
            ),
        )
    owner = best_run(earlier_dir, best)
    history = [
        {**h, "run": h["run"] if is_run_name(h.get("run")) else earlier_dir.name}
        for h in best.get("history") or []
        if isinstance(h, dict) and isinstance(h.get("step"), int)
    ]
    where = best_checkpoint_dir(earlier_dir, best)
    if not (where / "adapter_config.json").is_file():
        return (
            None,
            history,
            t(
                "probe: the earlier best, step {step} of run {run}, is no longer on disk ({path} missing): "
                "not a candidate; the best is chosen among the checkpoints kept",
                step=best["step"],
                run=owner,
                path=where,
            ),
        )
    record = {"step": best["step"], "metric": metric, "mode": mode, "value": best.get("value"), "run": owner}
    return (
        record,
        history,
        t(
            "probe: carrying over the best so far, step {step} of run {run} ({metric} = {value}), kept in {path}",
            step=best["step"],
            run=owner,
            metric=metric,
            value=best.get("value"),
            path=where,
        ),
    )


def better(value: float, than: float | None, mode: str) -> bool:
    """Whether `value` makes a new best over `than` (ties go to the later step, so a tie is better)."""
    if not _number(value):
        return False
    if not _number(than):  # none yet (or a record that holds no number): any number is better
        return True
    return value >= than if mode == "max" else value <= than


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def protected_checkpoint(output_dir: Path) -> str | None:
    """The best checkpoint's folder under a trainer's output dir (`<run>/checkpoints`), which rotation keeps."""
    best = read_best(Path(output_dir).parent)
    if best is None or best_run(Path(output_dir).parent, best) != Path(output_dir).parent.name:
        return None  # no best, or it lives in the earlier run a resume continued: nothing here to keep
    return str(Path(output_dir) / f"checkpoint-{best['step']}")


def select_adapter(run_dir: Path, which: str | None) -> Path:
    """The adapter directory `--checkpoint` names in a run: `last`/None the final adapter, `best` the
    step best.json records, a number that step's checkpoint. Raise StageError naming the run and step."""
    run_dir = Path(run_dir)
    try:
        which = parse_checkpoint(which) if which is not None else "last"
    except ValueError as e:
        raise StageError(f"--checkpoint: {e}") from None
    if which == "last":
        return run_dir / ADAPTER_DIR
    if which == "best":
        best = read_best(run_dir)
        if best is None:
            raise StageError(
                t(
                    "--checkpoint best: run {run} recorded no best checkpoint ({file} missing: "
                    "was [probe] enabled and did it save a checkpoint?)",
                    run=run_dir.name,
                    file=BEST_FILE,
                )
            )
        step = best["step"]
        path = best_checkpoint_dir(run_dir, best)
        owner = best_run(run_dir, best)
    else:
        step = int(which)
        path, owner = checkpoint_path(run_dir, step), run_dir.name
    if not (path / "adapter_config.json").is_file():
        kept = ", ".join(map(str, saved_steps(path.parent.parent))) or t("none")
        what = t("best step {step}", step=step) if which == "best" else t("step {step}", step=step)
        if owner != run_dir.name:
            what = t("{what} (of run {run}, which it resumed)", what=what, run=owner)
        raise StageError(
            t(
                "--checkpoint {which}: run {run} has no checkpoint for {what} "
                "({path} missing; checkpoints kept: {kept})",
                which=which,
                run=run_dir.name,
                what=what,
                path=path,
                kept=kept,
            )
        )
    return path
