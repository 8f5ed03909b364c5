"""Stage 2 — distill: a teacher writes `<think>…</think><answer>…</answer>` solutions.

Resumable: ids already in data/distilled.jsonl are skipped, and each solution is appended and
flushed as soon as it exists, so a crash or a stop loses at most the one in flight.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time

from ftmodel.context import StageContext, StageError
from ftmodel.contracts import StageContract
from ftmodel.data.loaders import read_jsonl
from ftmodel.i18n import t
from ftmodel.llm import check_service, map_chat
from ftmodel.workspace import DISTILLED, RAW_TRAIN

CONTRACT = StageContract(
    "distill",
    reads=(
        "distill.backend",
        "distill.base_url",
        "distill.model",
        "distill.temperature",
        "distill.max_tokens",
        "distill.builtin_error_rate",
        "distill.max_samples",
        "data.system_prompt",
    ),
    inputs=(RAW_TRAIN,),
    shared_outputs=(DISTILLED,),
)


def preflight(ctx: StageContext) -> None:
    """Check the questions exist and the teacher is configured."""
    if not ctx.ws.raw_train.exists():
        raise StageError(t("{path} not found: run `ftmodel {stage}` first", path=ctx.ws.raw_train, stage="prepare"))
    check_service(ctx.cfg.distill, "distill")


GIVE_UP_AFTER = 20  # failures with no answer at all before a teacher is taken for down (fewer items: all)


def _give_up(errors: int, first, last) -> None:
    """Fail the stage: the teacher answered nothing."""
    if str(last) != str(first):
        raise StageError(
            t(
                "the teacher failed {n} times and answered nothing: first error: {first}; last error: {last}",
                n=errors,
                first=first,
                last=last,
            )
        )
    raise StageError(
        t("the teacher failed {n} times and answered nothing: first error: {first}", n=errors, first=first)
    )


def builtin_teacher(record: dict, error_rate: float) -> str:
    """Return the bank's worked solution, deliberately spoiled for a fixed `error_rate` share of ids."""
    rng = random.Random(hashlib.sha1(record["id"].encode()).hexdigest())
    solution = record.get("solution") or ""
    if not solution or rng.random() >= error_rate:
        return solution
    if rng.random() < 0.5:  # a wrong answer in a well-formed solution
        return re.sub(r"<answer>.*?</answer>", "<answer>unsure</answer>", solution, flags=re.DOTALL)
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
    tracker = ctx.tracker(
        run_name=ctx.run_name(),
        tags=["distill"],
        wandb_config={
            "backend": ctx.cfg.distill.backend,
            "model": ctx.cfg.distill.model,
            "concurrency": ctx.cfg.distill.concurrency,
        },
    )
    d = ctx.cfg.distill
    stats = {"done": len(questions) - len(todo), "errors": 0, "missing": 0, "tokens": 0}
    done_before, first_error = stats["done"], ""
    failed: list[str] = []  # ids the teacher failed on for good (after its retries): a rerun asks for these
    started = time.monotonic()

    def record(out, q: dict, solution: str) -> None:
        out.write(
            json.dumps({**q, "solution": solution, "teacher": f"{d.backend}:{d.model}"}, ensure_ascii=False) + "\n"
        )
        out.flush()  # appended and flushed one by one: a crash loses at most what is in flight

    last_step = [-1]

    def report(force: bool = False) -> None:
        handled = stats["done"] + stats["errors"] + stats["missing"]
        if handled != last_step[0] and (force or handled % 50 == 0):
            last_step[0] = handled  # one row per step: wandb would merge a repeated step, metrics.jsonl not
            rate = (handled - (len(questions) - len(todo))) / max(time.monotonic() - started, 1e-9)
            tracker.log(
                {
                    "distill/done": stats["done"],
                    "distill/total": len(questions),
                    "distill/errors": stats["errors"],
                    "distill/tokens": stats["tokens"],
                    "distill/rate": rate,
                },
                step=handled,
            )
            ctx.progress(handled, len(questions), force=force)

    with open(path, "a", encoding="utf-8") as out:
        if d.backend == "builtin":
            for q in todo:
                ctx.check_stop()
                solution = builtin_teacher(q, d.builtin_error_rate)
                if solution:
                    record(out, q, solution)
                    stats["done"] += 1
                else:
                    stats["missing"] += 1
                report()
        else:
            from ftmodel.answers import parse_strict
            from ftmodel.llm import make_client
            from ftmodel.models import device_for
            from ftmodel.prompts import teacher_messages

            client = make_client(
                d,
                device=device_for(ctx.cfg) if d.backend == "hf" else "cpu",
                trust_remote_code=ctx.cfg.model.trust_remote_code,
            )
            # One worked example in the answer format (a well-formed solution from the data, if any):
            # small instruct teachers ignore a format described only in words.
            example = next((q for q in questions if parse_strict(q.get("solution") or "")[0]), None)
            messages = lambda q: teacher_messages(
                q["question"],
                ctx.cfg.data.system_prompt,
                example if example is None or example["id"] != q["id"] else None,
            )
            for q, reply, error in map_chat(client, todo, messages, concurrency=d.concurrency, log=ctx.log):
                if error:
                    if error.fatal:
                        raise StageError(t("teacher: {error}", error=error))
                    stats["errors"] += 1
                    failed.append(q["id"])
                    first_error = first_error or str(error)
                    ctx.log(f"teacher error on {q['id']}: {error}")
                    if stats["errors"] >= min(GIVE_UP_AFTER, len(todo)) and stats["done"] == done_before:
                        _give_up(stats["errors"], first_error, error)
                else:
                    record(out, q, reply.text.strip())
                    stats["done"] += 1
                    stats["tokens"] += reply.prompt_tokens + reply.completion_tokens
                report()
                ctx.check_stop()
        report(force=True)
    ctx.log(
        f"distilled {stats['done']} of {len(questions)}"
        + (f"; {stats['errors']} teacher errors (a rerun retries them)" if stats["errors"] else "")
    )
    if stats["errors"] and stats["done"] == done_before:  # every request failed: nothing was produced
        _give_up(stats["errors"], first_error, first_error)
    if failed:  # some items are missing: this run is not whole and is never reused as if it were
        ctx.mark_partial(
            f"the teacher failed on {len(failed)} of {len(questions)} items",
            missing=len(failed),
            total=len(questions),
            retry="fetch the missing ones",
            items=failed,
        )
    if stats["missing"]:  # the data has no solution for these: a rerun would not change that (not partial)
        ctx.log(f"{stats['missing']} questions had no worked solution for the builtin teacher")
        if stats["missing"] == len(todo):
            raise StageError(
                t(
                    "the builtin teacher has no solutions for this data: give a `solution` column "
                    "or use an openai/hf teacher"
                )
            )
    ctx.progress(len(questions), len(questions), force=True)
    return {"distilled": path}


def _repair_torn_tail(path) -> None:
    """Cut a last line without its newline (a crash mid-write), so appends start on a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])
