"""Stage 3 — filter: keep well-formed, correct, non-duplicate, length-bounded samples for SFT."""

from __future__ import annotations

from collections import Counter, defaultdict

from ftmodel.answers import AnswerRules, answers_match, extract_answer, parse_strict
from ftmodel.context import StageContext, StageError
from ftmodel.contracts import StageContract
from ftmodel.data.loaders import read_jsonl, write_jsonl
from ftmodel.i18n import t
from ftmodel.textio import pad, write_json
from ftmodel.workspace import DISTILLED, SFT_DATA

# Its drops are its job (format, correctness, duplicates, length), never a fault: a filter run is never partial.
CONTRACT = StageContract("filter", reads=("filter", "answers"), inputs=(DISTILLED,), shared_outputs=(SFT_DATA,))


def preflight(ctx: StageContext) -> None:
    """Check there is something to filter."""
    if not ctx.ws.distilled.exists():
        raise StageError(t("{path} not found: run `ftmodel {stage}` first", path=ctx.ws.distilled, stage="distill"))


def rejection_reason(sample: dict, cfg, seen: set[str]) -> str | None:
    """Say why a distilled sample is dropped, or None to keep it."""
    solution = sample.get("solution", "")
    f = cfg.filter
    if f.require_format and not parse_strict(solution)[0]:
        return "format"
    if f.require_correct and not answers_match(
        extract_answer(solution), sample["answer"], sample.get("qtype"), AnswerRules.from_config(cfg.answers)
    ):
        return "incorrect"
    if len(solution) < f.min_chars:
        return "too_short"
    if len(solution) > f.max_chars:
        return "too_long"
    if f.dedup and sample["question"] in seen:
        return "duplicate"
    return None


def run(ctx: StageContext) -> dict:
    """Write data/sft.jsonl and a per-qtype filter report."""
    samples = read_jsonl(ctx.ws.distilled)
    kept, seen = [], set()
    reasons: Counter = Counter()
    per_qtype: dict[str, Counter] = defaultdict(Counter)
    for s in samples:
        reason = rejection_reason(s, ctx.cfg, seen)
        per_qtype[s["qtype"]]["total"] += 1
        if reason:
            reasons[reason] += 1
            per_qtype[s["qtype"]][f"dropped_{reason}"] += 1
            continue
        seen.add(s["question"])
        kept.append(s)
        per_qtype[s["qtype"]]["kept"] += 1
    formatted = sum(parse_strict(s.get("solution", ""))[0] for s in samples)
    teacher_note = t(
        "the teacher used the <think>…</think><answer>…</answer> format in {formatted} of {total} samples: "
        "read a few lines of {path}; a larger or better-prompted teacher (data.system_prompt) is the fix",
        formatted=formatted,
        total=len(samples),
        path=ctx.ws.distilled,
    )
    if not kept:
        raise StageError(
            t(
                "the filter kept 0 of {total} samples ({reasons}); {advice}",
                total=len(samples),
                reasons=dict(reasons),
                advice=teacher_note
                if formatted < len(samples) / 2
                else t("check the teacher's output or loosen [filter]"),
            )
        )
    if formatted < len(samples) / 2:
        ctx.log(f"WARNING: {teacher_note}")
    write_jsonl(ctx.ws.sft_data, kept)
    report = {
        "total": len(samples),
        "kept": len(kept),
        "dropped": dict(reasons),
        "teacher_formatted": formatted,
        "per_qtype": {q: dict(c) for q, c in sorted(per_qtype.items())},
    }
    report_path = ctx.run.path / "filter_report.json"
    write_json(report_path, report)
    ctx.log(f"kept {len(kept)} of {len(samples)} samples; dropped {dict(reasons) or 'none'}")
    for q, c in sorted(per_qtype.items()):
        ctx.log(f"  {pad(q, 20)} kept {c['kept']:5} / {c['total']}")
    tracker = ctx.tracker(
        run_name=ctx.run_name(), tags=["filter"], wandb_config={k: v for k, v in vars(ctx.cfg.filter).items()}
    )
    tracker.log(
        {
            "filter/total": len(samples),
            "filter/kept": len(kept),
            **{f"filter/dropped_{k}": v for k, v in reasons.items()},
        },
        step=0,
    )
    return {"sft_data": ctx.ws.sft_data, "report": report_path}
