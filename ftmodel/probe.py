"""The probe: a small fixed set of held-out questions scored at every checkpoint inside SFT and GRPO,
and the best checkpoint it finds recorded (`best.json`) and kept through rotation.

The probe runs in the training process (a TrainerCallback on the trainer's own model: no second
model load), with evaluation's batched greedy generation and answer matcher, so `probe/…` numbers
mean what `evaluate` means, on fewer questions. Every rank generates the same probe (no rank waits
in a collective while another generates; sharded models generate together); rank 0 records.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from pathlib import Path

from ftmodel.checkpoints import (
    best_checkpoint_dir,
    best_run,
    better,
    carried_best,
    protected_checkpoint,
    read_best,
    write_best,
)
from ftmodel.context import StageContext
from ftmodel.data.loaders import read_jsonl
from ftmodel.models import ADAPTER_META

PREFIX = "probe/"


def _order_key(q: dict) -> str:
    return hashlib.sha256(f"{q.get('qtype')}\0{q.get('id')}\0{q.get('question')}".encode()).hexdigest()


def _norm(text) -> str:
    return " ".join(str(text).split()).casefold()


def pick_questions(eval_rows: list[dict], train_rows: list[dict], size: int) -> list[dict]:
    """`size` eval questions, the same ones on every call: none whose text a training row has, taken
    in turn from each question type (in a fixed hash order) so every type is probed."""
    seen = {_norm(r.get("question", "")) for r in train_rows}
    by_type: dict[str, list[dict]] = defaultdict(list)
    for q in eval_rows:
        if isinstance(q.get("question"), str) and "answer" in q and _norm(q["question"]) not in seen:
            by_type[str(q.get("qtype"))].append(q)
    queues = [sorted(rows, key=_order_key) for _, rows in sorted(by_type.items())]
    picked: list[dict] = []
    while len(picked) < size and any(queues):
        for queue in queues:
            if queue and len(picked) < size:
                picked.append(queue.pop(0))
    return picked


def probe_questions(ctx: StageContext) -> list[dict]:
    """The run's probe set: from the workspace's eval split, never a question of the training data."""
    if not ctx.ws.raw_eval.exists():
        return []
    train: list[dict] = []
    for path in (ctx.ws.raw_train, ctx.ws.sft_data):
        if path.exists():
            train += read_jsonl(path)
    return pick_questions(read_jsonl(ctx.ws.raw_eval), train, ctx.cfg.probe.size)


def probe_metrics(summary: dict) -> dict[str, float]:
    """`probe/format_accuracy`, `probe/answer_accuracy` and `probe/answer_accuracy/<qtype>` from a score summary."""
    out = {
        f"{PREFIX}format_accuracy": summary["format_accuracy"],
        f"{PREFIX}answer_accuracy": summary["answer_accuracy"],
    }
    for qtype, c in summary["per_qtype"].items():
        out[f"{PREFIX}answer_accuracy/{qtype}"] = c["answer_accuracy"]
    return out


def write_checkpoint_meta(ckpt: Path, *, base: str, stage: str, run_id: str, parent: str | None, step: int) -> None:
    """Note the base model in a checkpoint, as in a final adapter, so `--checkpoint` can load it alone."""
    import json

    if ckpt.is_dir():
        meta = {"base": base, "stage": stage, "run": run_id, "parent": parent, "step": step}
        (ckpt / ADAPTER_META).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def make_probe_callback(ctx: StageContext, tracker, *, base: str, parent: str | None):
    """Build the TrainerCallback that notes each checkpoint's base model, scores the probe set at each
    save (or every `probe.every` steps, each made a save) and records the best step."""
    from transformers import TrainerCallback

    from ftmodel.answers import AnswerRules
    from ftmodel.evaluation import generate, score
    from ftmodel.training import rotate_keeping_best

    p = ctx.cfg.probe
    questions = probe_questions(ctx) if p.enabled else []
    if p.enabled and not questions:
        ctx.log("probe: no held-out question to probe with (run `ftmodel prepare`); no probe, no best checkpoint")
    elif questions:
        ctx.log(
            f"probe: {len(questions)} held-out questions at "
            + (f"every {p.every} steps" if p.every else "each checkpoint")
            + f"; best by {p.best_metric} ({p.best_mode})"
        )
    rules = AnswerRules.from_config(ctx.cfg.answers)
    history: list[dict] = carry_over(ctx, tracker) if questions else []
    latest: dict = {}  # the trainer's last logged values (`loss`…), which best_metric may name

    class ProbeCallback(TrainerCallback):
        """Score the probe at checkpoints; keep best.json and the best checkpoint."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            latest.update({k: v for k, v in (logs or {}).items() if isinstance(v, (int, float))})

        def on_step_end(self, args, state, control, **kwargs):
            if questions and p.every and state.global_step % p.every == 0:
                control.should_save = True  # the probed step is a checkpoint, so it can be the best one

        def on_save(self, args, state, control, model=None, processing_class=None, **kwargs):
            step = state.global_step
            ckpt = Path(args.output_dir) / f"checkpoint-{step}"
            if ctx.is_main:
                write_checkpoint_meta(ckpt, base=base, stage=ctx.stage, run_id=ctx.run.id, parent=parent, step=step)
            stopping = control.should_training_stop and step < state.max_steps
            due = not p.every or step % p.every == 0 or step >= state.max_steps
            if not questions or stopping or not due or model is None or processing_class is None:
                return
            metrics = self.score(model, processing_class)
            tracker.log(metrics, step=step)
            if ctx.is_main:
                self.offer(step, {**latest, **metrics}, Path(args.output_dir), args.save_total_limit)

        def score(self, model, tokenizer) -> dict[str, float]:
            was_training, side = model.training, tokenizer.padding_side
            started = time.monotonic()
            try:
                completions = generate(
                    ctx, model, tokenizer, questions, max_new_tokens=p.max_new_tokens or None, report=False
                )
            finally:
                tokenizer.padding_side = side
                model.train(was_training)
            summary, _ = score(questions, completions, {}, None, rules)
            # What the probe costs, beside what it finds (bench.probe_overhead sums it).
            return {**probe_metrics(summary), f"{PREFIX}seconds": round(time.monotonic() - started, 3)}

        def offer(self, step: int, values: dict, output_dir: Path, limit) -> None:
            value = values.get(p.best_metric)
            history.append({"step": step, "value": value, "run": ctx.run.id})
            if value is None:
                ctx.log(f"probe: step {step}: no {p.best_metric} to rank the checkpoint by")
                return
            best = read_best(ctx.run.path)
            again = best is not None and best["step"] == step and best_run(ctx.run.path, best) == ctx.run.id
            if better(float(value), best and best.get("value"), p.best_mode) or again:
                write_best(
                    ctx.run.path, step=step, metric=p.best_metric, mode=p.best_mode, value=value, history=history
                )
                tracker.summary({"best/step": step, "best/value": value})
                ctx.log(f"probe: best checkpoint so far: step {step} ({p.best_metric} = {value:.4g})")
            elif best is not None:  # the best stays; its record gains this step's value
                write_best(ctx.run.path, **{**_record_args(best), "history": history})
            rotate_keeping_best(output_dir, limit, protected_checkpoint(output_dir))

    return ProbeCallback()


def _record_args(best: dict) -> dict:
    return {**{k: best[k] for k in ("step", "metric", "mode", "value")}, "run": best.get("run")}


def carry_over(ctx: StageContext, tracker) -> list[dict]:
    """A resumed run continues the best of the run it resumed: that run's best (if its checkpoint is still
    on disk, where it stays) is this run's first candidate, and its probe history (each step with its run)
    begins this run's. Returns the history; writes best.json (rank 0) when there is a best to carry."""
    earlier = (ctx.run.read_state().get("resume") or {}).get("from_run")
    if not isinstance(earlier, str) or not earlier or earlier == ctx.run.id:
        return []
    p = ctx.cfg.probe
    record, history, note = carried_best(ctx.run.path, ctx.ws.runs / earlier, metric=p.best_metric, mode=p.best_mode)
    ctx.log(note)
    if record is not None and ctx.is_main:
        write_best(ctx.run.path, **{**_record_args(record), "history": history})
        tracker.summary({"best/step": record["step"], "best/value": record["value"]})
    return history


def best_outputs(ctx: StageContext) -> dict:
    """The run's outputs about its best checkpoint (for state.json's outputs), if it recorded one."""
    best = read_best(ctx.run.path)
    if best is None:
        return {}
    return {"best": ctx.run.path / "best.json", "best_checkpoint": best_checkpoint_dir(ctx.run.path, best)}
