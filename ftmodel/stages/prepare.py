"""Stage 1 — prepare: build the question bank, normalise it to one schema, split train/eval.

Also builds the embedded tiny base model on first use (cached in the workspace), so later stages
start at once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ftmodel.answers import AnswerRules
from ftmodel.context import StageContext, StageError
from ftmodel.contracts import StageContract
from ftmodel.data import bank
from ftmodel.data.loaders import ColumnMap, DataError, load_data, write_jsonl
from ftmodel.data.split import split_records
from ftmodel.i18n import t
from ftmodel.textio import write_json
from ftmodel.workspace import RAW_DIR


def source_inputs(cfg) -> dict[str, Path]:
    """The user's data file or folder, an input of the stage (the built-in bank is generated: none)."""
    return {} if cfg.data.source == "builtin" else {"data.source": source_path(cfg.data.source)}


CONTRACT = StageContract(
    "prepare", reads=("data", "model", "answers"), source_inputs=source_inputs, shared_outputs=(RAW_DIR,)
)


def preflight(ctx: StageContext) -> None:
    """Check the data source and question types before anything is generated or loaded."""
    from ftmodel.models import check_model_source

    d = ctx.cfg.data
    if d.source == "builtin":
        unknown = [q for q in d.qtypes if q not in bank.QTYPES]
        if unknown:
            raise StageError(
                t(
                    "data.qtypes: unknown question type {unknown} (built-in types: {types})",
                    unknown=", ".join(map(repr, unknown)),
                    types=", ".join(bank.QTYPES),
                )
            )
    elif not source_path(d.source).exists():
        raise StageError(t("data.source: {source} not found", source=d.source))
    check_model_source(ctx.cfg)


def source_path(source: str) -> Path:
    """The file or directory a user-data source names (`sample:NAME` is a file shipped with ftmodel)."""
    from ftmodel.profiles import ProfileError, data_source_path

    try:
        return data_source_path(source)
    except ProfileError as e:
        raise StageError(str(e)) from None


def load_questions(ctx: StageContext):
    """Return (train, eval, loaded) from the configured source (loaded: the loader's column report, or
    None for the built-in bank)."""
    d = ctx.cfg.data
    try:
        if d.source == "builtin":
            train, evals = bank.generate_bank(d.seed, d.n_train, d.n_eval, d.qtypes or None)
            return train, evals, None
        loaded = load_data(source_path(d.source), ColumnMap.from_config(d))
        train, evals = split_records(loaded.records, d.eval_fraction, d.seed)
    except DataError as e:
        raise StageError(str(e)) from None
    return train, evals, loaded


def run(ctx: StageContext) -> dict:
    """Write data/raw/{train,eval}.jsonl and a report (columns, per-qtype counts, token lengths, what the
    length limit would cut); build the tiny base if configured."""
    from ftmodel.data.check import build_report, render
    from ftmodel.models import load_tokenizer, resolve_base

    train, evals, loaded = load_questions(ctx)
    ctx.ws.raw_train.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(ctx.ws.raw_train, train)
    write_jsonl(ctx.ws.raw_eval, evals)
    ctx.log(f"{len(train)} train / {len(evals)} eval questions -> {ctx.ws.raw_train.parent}")
    counts = {"train": dict(Counter(r["qtype"] for r in train)), "eval": dict(Counter(r["qtype"] for r in evals))}
    tracker = ctx.tracker(
        run_name=ctx.run_name(),
        tags=["prepare"],
        wandb_config={"source": ctx.cfg.data.source, "seed": ctx.cfg.data.seed},
    )
    tracker.log(
        {
            "train_questions": len(train),
            "eval_questions": len(evals),
            **{f"{q}/train": n for q, n in counts["train"].items()},
        },
        step=0,
    )
    base = resolve_base(ctx)
    data_report = build_report(
        ctx.cfg, train, evals, load_tokenizer(base, ctx.cfg), loaded=loaded, tokenizer_name=ctx.cfg.model.name_or_path
    )
    for line in render(data_report).splitlines():
        ctx.log(line)
    rules = AnswerRules.from_config(ctx.cfg.answers)
    report = {
        **data_report.as_dict(),
        "train": len(train),
        "eval": len(evals),
        "majority_baseline": bank.majority_baseline(train, evals, rules) if evals else {},
    }
    write_json(ctx.run.path / "prepare_report.json", report)
    return {
        "train": ctx.ws.raw_train,
        "eval": ctx.ws.raw_eval,
        "report": ctx.run.path / "prepare_report.json",
        "base_model": base,
    }
