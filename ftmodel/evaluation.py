"""Score a model on the held-out questions: batched, left-padded greedy generation, then format
and answer accuracy overall and per question type, beside each type's majority-class baseline."""

from __future__ import annotations

from collections import defaultdict

from ftmodel.answers import score_completion
from ftmodel.context import StageContext, StageError
from ftmodel.data.loaders import read_jsonl


def eval_questions(ctx: StageContext) -> list[dict]:
    """The eval split (at most eval.num_samples questions)."""
    if not ctx.ws.raw_eval.exists():
        raise StageError(f"{ctx.ws.raw_eval} not found: run `ftmodel prepare` first")
    questions = read_jsonl(ctx.ws.raw_eval)
    if not questions:
        raise StageError(f"{ctx.ws.raw_eval} is empty: nothing to evaluate")
    n = ctx.cfg.eval.num_samples
    return questions[:n] if n else questions


def generate(ctx: StageContext, model, tokenizer, questions: list[dict], *, label: str = "") -> list[str]:
    """Generate greedy completions for every question, a batch at a time (stoppable between batches)."""
    import torch

    from ftmodel.prompts import prompt_messages

    tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
    bs = ctx.cfg.eval.batch_size
    device = next(model.parameters()).device
    model.eval()
    outputs: list[str] = []
    for start in range(0, len(questions), bs):
        ctx.check_stop()
        batch = questions[start:start + bs]
        texts = [tokenizer.apply_chat_template(prompt_messages(q["question"], ctx.cfg.data.system_prompt),
                                               tokenize=False, add_generation_prompt=True) for q in batch]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=ctx.cfg.eval.max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        outputs += tokenizer.batch_decode(new, skip_special_tokens=True)
        ctx.log(f"{label} generated {len(outputs)}/{len(questions)}")
    return outputs


def score(questions: list[dict], completions: list[str], baseline: dict[str, float]) -> tuple[dict, list[dict]]:
    """Return (summary, details): overall and per-qtype accuracies, and one scored row per question."""
    details = []
    per: dict[str, dict] = defaultdict(lambda: {"total": 0, "format_correct": 0, "answer_correct": 0})
    for q, text in zip(questions, completions):
        s = score_completion(text, q["answer"])
        details.append({"id": q["id"], "qtype": q["qtype"], "question": q["question"], "gold": q["answer"],
                        "completion": text, "predicted": s["answer"], "format_ok": s["format_ok"],
                        "correct": s["correct"]})
        for key in (q["qtype"], "overall"):
            per[key]["total"] += 1
            per[key]["format_correct"] += int(s["format_ok"])
            per[key]["answer_correct"] += int(s["correct"])
    for key, c in per.items():
        c["format_accuracy"] = c["format_correct"] / c["total"]
        c["answer_accuracy"] = c["answer_correct"] / c["total"]
        c["majority_baseline"] = baseline.get(key)
    overall = per.pop("overall")
    return {**overall, "per_qtype": dict(sorted(per.items()))}, details


def baseline_for(ctx: StageContext, questions: list[dict]) -> dict[str, float]:
    """Majority-class baseline per qtype, from the training answers."""
    from ftmodel.data.bank import majority_baseline

    train = read_jsonl(ctx.ws.raw_train) if ctx.ws.raw_train.exists() else []
    return majority_baseline(train, questions) if train else {}


def flat_metrics(summary: dict, prefix: str = "") -> dict[str, float]:
    """Flatten a summary into the original metric names (`format_accuracy`, `{qtype}/answer_accuracy`…)."""
    keys = ("format_accuracy", "answer_accuracy", "format_correct", "answer_correct", "total")
    out = {f"{prefix}{k}": summary[k] for k in keys}
    for qtype, c in summary["per_qtype"].items():
        for k in ("format_accuracy", "answer_accuracy", "total"):
            out[f"{prefix}{qtype}/{k}"] = c[k]
    return out


def qtype_table(summary: dict) -> tuple[list[str], list[list]]:
    """Per-qtype table rows (with the overall row last) for reports and wandb."""
    columns = ["qtype", "total", "format_accuracy", "answer_accuracy", "majority_baseline"]
    rows = [[q, c["total"], c["format_accuracy"], c["answer_accuracy"], c["majority_baseline"]]
            for q, c in summary["per_qtype"].items()]
    rows.append(["overall", summary["total"], summary["format_accuracy"], summary["answer_accuracy"],
                 summary.get("majority_baseline")])
    return columns, rows


def format_table(columns: list[str], rows: list[list]) -> str:
    """Render rows as an aligned plain-text table (floats to 3 decimals)."""
    cells = [[f"{v:.3f}" if isinstance(v, float) else ("-" if v is None else str(v)) for v in r] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(vals, widths)))
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])
