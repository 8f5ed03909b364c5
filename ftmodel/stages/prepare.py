"""Stage 1 — prepare: build the question bank, normalise it to one schema, split train/eval.

Also builds the embedded tiny base model on first use (cached in the workspace), so later stages
start at once.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from ftmodel.context import StageContext, StageError
from ftmodel.data import bank
from ftmodel.data.loaders import DataError, load_records, write_jsonl


def preflight(ctx: StageContext) -> None:
    """Check the data source and question types before anything is generated or loaded."""
    from ftmodel.models import check_model_source

    d = ctx.cfg.data
    if d.source == "builtin":
        unknown = [q for q in d.qtypes if q not in bank.QTYPES]
        if unknown:
            raise StageError(f"data.qtypes: unknown question type {', '.join(map(repr, unknown))} "
                             f"(built-in types: {', '.join(bank.QTYPES)})")
    elif not Path(d.source).exists():
        raise StageError(f"data.source: {d.source} not found")
    check_model_source(ctx.cfg)


def _split_user_records(records: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Split user records deterministically by a hash of the question, so a question never straddles."""
    train, evals = [], []
    for r in records:
        h = int.from_bytes(hashlib.sha1(f"{seed}|{r['question']}".encode()).digest()[:4], "big") / 2**32
        (evals if h < eval_fraction else train).append({**r, "split": "eval" if h < eval_fraction else "train"})
    if not train:
        raise StageError(f"data.source: no training questions left after holding out {eval_fraction:.0%}")
    return train, evals


def load_questions(ctx: StageContext) -> tuple[list[dict], list[dict]]:
    """Return (train, eval) records from the configured source."""
    d = ctx.cfg.data
    if d.source == "builtin":
        return bank.generate_bank(d.seed, d.n_train, d.n_eval, d.qtypes or None)
    try:
        records = load_records(d.source, question_field=d.question_field, answer_field=d.answer_field,
                               qtype_field=d.qtype_field)
    except DataError as e:
        raise StageError(str(e)) from None
    return _split_user_records(records, d.eval_fraction, d.seed)


def run(ctx: StageContext) -> dict:
    """Write data/raw/{train,eval}.jsonl and a per-qtype report; build the tiny base if configured."""
    from ftmodel.models import resolve_base

    train, evals = load_questions(ctx)
    ctx.ws.raw_train.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(ctx.ws.raw_train, train)
    write_jsonl(ctx.ws.raw_eval, evals)
    counts = {"train": dict(Counter(r["qtype"] for r in train)), "eval": dict(Counter(r["qtype"] for r in evals))}
    report = {"source": ctx.cfg.data.source, "train": len(train), "eval": len(evals), "per_qtype": counts,
              "majority_baseline": bank.majority_baseline(train, evals) if evals else {}}
    (ctx.run.path / "prepare_report.json").write_text(json.dumps(report, indent=2) + "\n")
    ctx.log(f"{len(train)} train / {len(evals)} eval questions -> {ctx.ws.raw_train.parent}")
    for qtype in sorted(counts["train"]):
        ctx.log(f"  {qtype:20} train {counts['train'][qtype]:5}  eval {counts['eval'].get(qtype, 0):4}")
    tracker = ctx.tracker(run_name=ctx.run_name(), tags=["prepare"],
                          wandb_config={"source": ctx.cfg.data.source, "seed": ctx.cfg.data.seed})
    tracker.log({"train_questions": len(train), "eval_questions": len(evals),
                 **{f"{q}/train": n for q, n in counts["train"].items()}}, step=0)
    base = resolve_base(ctx)
    return {"train": ctx.ws.raw_train, "eval": ctx.ws.raw_eval, "report": ctx.run.path / "prepare_report.json",
            "base_model": base}
