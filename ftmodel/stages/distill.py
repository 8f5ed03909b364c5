"""Stage 2 — distill: a teacher writes `<think>…</think><answer>…</answer>` solutions.

Resumable: ids already in data/distilled.jsonl are skipped, and each solution is appended and
flushed as soon as it exists, so a crash or a stop loses at most the one in flight.
"""

from __future__ import annotations

import hashlib
import json
import random

from ftmodel.context import StageContext, StageError
from ftmodel.data.loaders import read_jsonl


def preflight(ctx: StageContext) -> None:
    """Check the questions exist and the teacher backend is available."""
    if not ctx.ws.raw_train.exists():
        raise StageError(f"{ctx.ws.raw_train} not found: run `ftmodel prepare` first")
    if ctx.cfg.distill.backend != "builtin":
        raise StageError(f"distill.backend = {ctx.cfg.distill.backend!r} is not available yet; use \"builtin\"")


def builtin_teacher(record: dict, error_rate: float) -> str:
    """Return the bank's worked solution, deliberately spoiled for a fixed `error_rate` share of ids."""
    rng = random.Random(hashlib.sha1(record["id"].encode()).hexdigest())
    solution = record.get("solution") or ""
    if not solution or rng.random() >= error_rate:
        return solution
    if rng.random() < 0.5:  # a wrong answer in a well-formed solution
        return solution.replace(f"<answer>{record['answer']}</answer>", "<answer>unsure</answer>")
    return solution.replace("</think>", "")  # a malformed one


def _done_ids(path) -> set[str]:
    """Ids already distilled (a torn last line from a crash is ignored and redone)."""
    done = set()
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                done.add(json.loads(line)["id"])
            except (ValueError, KeyError, TypeError):
                continue
    return done


def run(ctx: StageContext) -> dict:
    """Distil every training question not distilled yet."""
    questions = read_jsonl(ctx.ws.raw_train)
    if ctx.cfg.distill.max_samples:
        questions = questions[: ctx.cfg.distill.max_samples]
    path = ctx.ws.distilled
    _repair_torn_tail(path)
    done = _done_ids(path)
    todo = [q for q in questions if q["id"] not in done]
    ctx.log(f"{len(questions)} questions, {len(questions) - len(todo)} already distilled, {len(todo)} to do")
    tracker = ctx.tracker(run_name=ctx.run_name(), tags=["distill"],
                          wandb_config={"backend": ctx.cfg.distill.backend})
    missing = 0
    with open(path, "a", encoding="utf-8") as out:
        for i, q in enumerate(todo, 1):
            ctx.check_stop()
            solution = builtin_teacher(q, ctx.cfg.distill.builtin_error_rate)
            if not solution:
                missing += 1
                continue
            out.write(json.dumps({**q, "solution": solution, "teacher": ctx.cfg.distill.backend}) + "\n")
            out.flush()
            if i % 200 == 0 or i == len(todo):
                done_now = len(questions) - len(todo) + i
                tracker.log({"distill/done": done_now, "distill/total": len(questions), "distill/errors": missing},
                            step=done_now)
                ctx.progress(done_now, len(questions))
    if missing:
        ctx.log(f"{missing} questions had no teacher solution (user data without a solution column)")
    if missing == len(todo) and todo:
        raise StageError("the builtin teacher has no solutions for this data: give a `solution` column "
                         "or use an openai/hf teacher")
    ctx.progress(len(questions), len(questions), force=True)
    return {"distilled": path}


def _repair_torn_tail(path) -> None:
    """Cut a last line without its newline (a crash mid-write), so appends start on a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])
