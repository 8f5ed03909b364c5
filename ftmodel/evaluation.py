"""Score a model on the held-out questions: batched, left-padded greedy generation, then format
and answer accuracy overall and per question type, beside each type's majority-class baseline."""

from __future__ import annotations

from collections import defaultdict

from ftmodel.answers import AnswerRules, score_completion
from ftmodel.context import StageContext, StageError
from ftmodel.data.loaders import read_jsonl
from ftmodel.i18n import t


def eval_questions(ctx: StageContext) -> list[dict]:
    """The eval split (at most eval.num_samples questions)."""
    if not ctx.ws.raw_eval.exists():
        raise StageError(t("{path} not found: run `ftmodel {stage}` first", path=ctx.ws.raw_eval, stage="prepare"))
    questions = read_jsonl(ctx.ws.raw_eval)
    if not questions:
        raise StageError(t("{path} is empty: nothing to evaluate", path=ctx.ws.raw_eval))
    n = ctx.cfg.eval.num_samples
    return questions[:n] if n else questions


def generate(
    ctx: StageContext,
    model,
    tokenizer,
    questions: list[dict],
    *,
    label: str = "",
    progress_offset: int = 0,
    progress_total: int | None = None,
    max_new_tokens: int | None = None,
    report: bool = True,
) -> list[str]:
    """Generate greedy completions for every question, a batch at a time (stoppable between batches);
    progress is reported as `progress_offset + done` of `progress_total` (default: this call's total),
    unless `report` is off (the probe inside training, whose progress is the trainer's steps)."""
    import torch

    from ftmodel.prompts import prompt_messages

    tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
    bs = ctx.cfg.eval.batch_size
    device = next(model.parameters()).device
    model.eval()
    outputs: list[str] = []
    for start in range(0, len(questions), bs):
        ctx.check_stop()
        batch = questions[start : start + bs]
        texts = [
            tokenizer.apply_chat_template(
                prompt_messages(q["question"], ctx.cfg.data.system_prompt), tokenize=False, add_generation_prompt=True
            )
            for q in batch
        ]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens or ctx.cfg.eval.max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                use_cache=True,  # a trainer turns the model's cache off for training; the probe generates inside it
            )
        new = out[:, enc["input_ids"].shape[1] :]
        outputs += tokenizer.batch_decode(new, skip_special_tokens=True)
        if report:
            ctx.log(f"{label} generated {len(outputs)}/{len(questions)}")
            ctx.progress(progress_offset + len(outputs), progress_total or len(questions))
    return outputs


def score(
    questions: list[dict],
    completions: list[str],
    baseline: dict[str, float],
    judge_scores: list[float | None] | None = None,
    rules: AnswerRules | None = None,
) -> tuple[dict, list[dict]]:
    """Return (summary, details): overall and per-qtype accuracies (and mean judge score when judged),
    and one scored row per question."""
    details = []
    per: dict[str, dict] = defaultdict(
        lambda: {"total": 0, "format_correct": 0, "answer_correct": 0, "judged": [], "judge_errors": 0}
    )
    for i, (q, text) in enumerate(zip(questions, completions)):
        s = score_completion(text, q["answer"], q["qtype"], rules)
        row = {
            "id": q["id"],
            "qtype": q["qtype"],
            "question": q["question"],
            "gold": q["answer"],
            "completion": text,
            "predicted": s["answer"],
            "format_ok": s["format_ok"],
            "correct": s["correct"],
        }
        judged = judge_scores[i] if judge_scores is not None else None
        if judge_scores is not None:
            row["judge_score"] = judged
        details.append(row)
        for key in (q["qtype"], "overall"):
            per[key]["total"] += 1
            per[key]["format_correct"] += int(s["format_ok"])
            per[key]["answer_correct"] += int(s["correct"])
            if judged is not None:
                per[key]["judged"].append(judged)
            elif judge_scores is not None:
                per[key]["judge_errors"] += 1
    for key, c in per.items():
        c["format_accuracy"] = c["format_correct"] / c["total"]
        c["answer_accuracy"] = c["answer_correct"] / c["total"]
        c["majority_baseline"] = baseline.get(key)
        judged = c.pop("judged")
        errors = c.pop("judge_errors")
        if judge_scores is not None:
            c["avg_judge_score"] = sum(judged) / len(judged) if judged else None
            c["judge_errors"] = errors
    overall = per.pop("overall")
    return {**overall, "per_qtype": dict(sorted(per.items()))}, details


def judge_completions(
    ctx: StageContext, judge, questions: list[dict], completions: list[str], *, label: str = ""
) -> list[float | None]:
    """Score each completion's answer with the judge (None where the judge failed).

    Scores the judge did not give make the run partial: it is never reused as whole, and a rerun asks
    the judge only for those (the judge's cache keeps the scores it gave, never a failure).
    """
    from ftmodel.answers import extract_answer

    ctx.check_stop()
    triples = [(q["question"], q["answer"], extract_answer(t) or t) for q, t in zip(questions, completions)]
    scores = judge.score_many(triples)
    ctx.log(f"judge scored {sum(s is not None for s in scores)}/{len(scores)} ({judge.errors} judge errors so far)")
    unscored = [q["id"] for q, s in zip(questions, scores) if s is None]
    if unscored:
        ctx.mark_partial(
            (f"{label}: " if label else "") + f"the judge gave no score for {len(unscored)} of {len(scores)} answers",
            missing=len(unscored),
            total=len(scores),
            retry="ask the judge only for the missing scores",
            items=unscored,
        )
    return scores


def load_target(ctx: StageContext, which: str, adapter_ref: str | None = None, checkpoint: str | None = None):
    """Load (model, tokenizer, adapter path or None) for base / sft / grpo (evaluate and ablation);
    `checkpoint` (best, last or a step) picks one of the adapter run's checkpoints."""
    from ftmodel.models import find_adapter, load_adapter_model, load_base_model, load_tokenizer, resolve_base

    if which == "base" and not adapter_ref:
        base = resolve_base(ctx)
        return load_base_model(base, ctx.cfg), load_tokenizer(base, ctx.cfg, "left"), None
    adapter = find_adapter(ctx.ws, adapter_ref, which, checkpoint)
    model, tokenizer, _ = load_adapter_model(adapter, ctx.cfg)
    return model, tokenizer, adapter


def maybe_judge(ctx: StageContext):
    """The judge when [judge] is enabled and `--no-judge` was not given, else None."""
    if not ctx.cfg.judge.enabled or ctx.args.get("no_judge"):
        return None
    from ftmodel.judge import build_judge

    return build_judge(ctx.cfg, ctx.ws, ctx.log)


def check_judge(ctx: StageContext) -> None:
    """Preflight: an enabled judge must be configured well enough to try."""
    if ctx.cfg.judge.enabled and not ctx.args.get("no_judge"):
        from ftmodel.llm import check_service

        check_service(ctx.cfg.judge, "judge")


def baseline_for(ctx: StageContext, questions: list[dict]) -> dict[str, float]:
    """Majority-class baseline per qtype, from the training answers."""
    from ftmodel.data.bank import majority_baseline

    train = read_jsonl(ctx.ws.raw_train) if ctx.ws.raw_train.exists() else []
    return majority_baseline(train, questions, AnswerRules.from_config(ctx.cfg.answers)) if train else {}


def flat_metrics(summary: dict, prefix: str = "") -> dict[str, float]:
    """Flatten a summary into the original metric names (`format_accuracy`, `{qtype}/answer_accuracy`…)."""
    keys = (
        "format_accuracy",
        "answer_accuracy",
        "format_correct",
        "answer_correct",
        "total",
        "avg_judge_score",
        "judge_errors",
    )
    out = {f"{prefix}{k}": summary[k] for k in keys if summary.get(k) is not None}
    for qtype, c in summary["per_qtype"].items():
        for k in ("format_accuracy", "answer_accuracy", "total", "avg_judge_score"):
            if c.get(k) is not None:
                out[f"{prefix}{qtype}/{k}"] = c[k]
    return out


def qtype_table(summary: dict) -> tuple[list[str], list[list]]:
    """Per-qtype table rows (with the overall row last) for reports and wandb."""
    judged = "avg_judge_score" in summary
    columns = ["qtype", "total", "format_accuracy", "answer_accuracy", "majority_baseline"]
    columns += ["avg_judge_score"] if judged else []
    rows = []
    for name, c in [*summary["per_qtype"].items(), ("overall", summary)]:
        rows.append(
            [name, c["total"], c["format_accuracy"], c["answer_accuracy"], c.get("majority_baseline")]
            + ([c.get("avg_judge_score")] if judged else [])
        )
    return columns, rows
