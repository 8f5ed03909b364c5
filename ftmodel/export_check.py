"""Did the merge do anything, and the right thing? The merged model, as saved, against the adapter on
its base and against the base alone, on a few held-out questions with greedy decoding.

- merged vs adapter: in float32 the generated tokens must be identical on every probe prompt; in
  bfloat16/float16 (where merging rounds W + BA once and the adapter path rounds each product) the
  largest logit difference, teacher-forced over prompt and continuation, must stay within
  `export.logit_tolerance`. The first prompt that breaks this is named.
- merged vs base: the outputs must differ on at least one prompt, else the merge (or the adapter it
  merged) changed nothing — a known trap of merges that silently drop the adapter.

ML imports live inside the functions: the export stage's module, which the console's launcher
imports for its preflight, stays light.
"""

from __future__ import annotations

from pathlib import Path

from ftmodel.i18n import t

REPORT = "export_check.json"
# Questions used when the workspace has no eval split (an adapter exported from elsewhere).
FALLBACK_QUESTIONS = (
    "A stock bought at 40 is sold at 46. What is the gain in percent?",
    "Is a bond's price higher or lower when interest rates rise?",
    "What does EBITDA stand for?",
    "Revenue is 120 and costs are 90. What is the profit?",
    "Which is larger: 3/8 or 0.4?",
    "Define the term 'liquidity'.",
    "A loan of 1000 at 5% simple interest for 2 years: how much interest?",
    "Is a 10% fall followed by a 10% rise a net gain or loss?",
)


def probe_questions(eval_path: Path, k: int) -> list[str]:
    """The first `k` held-out questions (the eval split: never trained on), else fixed finance questions."""
    from ftmodel.data.loaders import read_jsonl

    questions: list[str] = []
    if Path(eval_path).is_file():
        questions = [str(q["question"]) for q in read_jsonl(eval_path) if isinstance(q, dict) and q.get("question")]
    questions = questions or list(FALLBACK_QUESTIONS)
    return questions[:k]


def _prompt_ids(tokenizer, question: str, system_prompt: str) -> list[int]:
    from ftmodel.prompts import prompt_messages

    text = tokenizer.apply_chat_template(
        prompt_messages(question, system_prompt), tokenize=False, add_generation_prompt=True
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def greedy(model, tokenizer, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """Greedy continuations, one prompt at a time (no padding: nothing but the weights can differ)."""
    import torch

    device = next(model.parameters()).device
    model.eval()
    out = []
    for ids in prompts:
        x = torch.tensor([ids], device=device)
        with torch.no_grad():
            y = model.generate(
                input_ids=x,
                attention_mask=torch.ones_like(x),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        out.append(y[0, len(ids) :].tolist())
    return out


def logits_of(model, sequences: list[list[int]]) -> list:
    """Teacher-forced logits (float32, on the CPU) of each sequence."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for seq in sequences:
            x = torch.tensor([seq], device=device)
            out.append(model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0].float().cpu())
    return out


def verify_export(
    merged_dir: Path,
    adapter_dir: Path,
    cfg,
    questions: list[str],
    *,
    log=print,
) -> dict:
    """Load the saved merged model, the adapter on its base, and the base; compare their greedy outputs
    on `questions`; return the report (`verdict` "pass" or "fail", `problem` naming the first prompt)."""
    import gc

    from ftmodel.models import adapter_meta, load_adapter_model, load_base_model, load_tokenizer

    ex = cfg.export
    base_ref = adapter_meta(Path(adapter_dir))["base"]
    tokenizer = load_tokenizer(str(merged_dir), cfg)
    prompts = [_prompt_ids(tokenizer, q, cfg.data.system_prompt) for q in questions]

    def run(model, label: str, reference: list[list[int]] | None = None):
        tokens = greedy(model, tokenizer, prompts, ex.probe_max_new_tokens)
        # Logits over prompt + the adapter's continuation: the same positions for every model.
        seqs = [p + r for p, r in zip(prompts, reference or tokens)]
        log(f"export check: {label} generated {len(tokens)} probe answers")
        return tokens, logits_of(model, seqs)

    adapter_model, _, _ = load_adapter_model(Path(adapter_dir), cfg)
    adapter_tokens, adapter_logits = run(adapter_model, "adapter on its base")
    del adapter_model
    gc.collect()
    merged_model = load_base_model(str(merged_dir), cfg)
    merged_tokens, merged_logits = run(merged_model, "merged model", adapter_tokens)
    dtype = str(next(merged_model.parameters()).dtype).replace("torch.", "")
    del merged_model
    gc.collect()
    base_model = load_base_model(base_ref, cfg)
    base_tokens, base_logits = run(base_model, "base model", adapter_tokens)
    del base_model
    gc.collect()
    return judge(
        questions,
        [tokenizer.decode(t, skip_special_tokens=True) for t in base_tokens],
        [tokenizer.decode(t, skip_special_tokens=True) for t in adapter_tokens],
        [tokenizer.decode(t, skip_special_tokens=True) for t in merged_tokens],
        tokens=(base_tokens, adapter_tokens, merged_tokens),
        diffs=[float((m - a).abs().max()) for m, a in zip(merged_logits, adapter_logits)],
        base_diffs=[float((m - b).abs().max()) for m, b in zip(merged_logits, base_logits)],
        dtype=dtype,
        tolerance=ex.logit_tolerance,
        extra={"merged": str(merged_dir), "adapter": str(adapter_dir), "base": base_ref},
    )


def judge(questions, base, adapter, merged, *, tokens, diffs, base_diffs, dtype, tolerance, extra=None) -> dict:
    """The verdict from the three models' outputs: merged must match the adapter (tokens in float32, logits
    within `tolerance` otherwise) on every prompt and differ from the base on at least one."""
    base_tokens, adapter_tokens, merged_tokens = tokens
    exact = dtype == "float32"
    rows, first_wrong = [], None
    for i, q in enumerate(questions):
        same_tokens = merged_tokens[i] == adapter_tokens[i]
        rows.append(
            {
                "prompt": q,
                "base": base[i],
                "adapter": adapter[i],
                "merged": merged[i],
                "merged_equals_adapter": same_tokens,
                "merged_equals_base": merged_tokens[i] == base_tokens[i],
                "max_logit_diff": diffs[i],
                "max_logit_diff_from_base": base_diffs[i],
            }
        )
        if first_wrong is None and not (same_tokens if exact else diffs[i] <= tolerance):
            first_wrong = i
    problem = None
    if all(r["merged_equals_base"] for r in rows):
        # The known trap (a merge that silently dropped the adapter) says so first, whatever else differs.
        unlike = sum(not r["merged_equals_adapter"] for r in rows)
        problem = t(
            "the merged model answers all {n} probe prompts exactly as the base model does: "
            "the merge (or the adapter it merged) changed nothing",
            n=len(rows),
        ) + (t(" (the adapter on its base answers {n} of them differently)", n=unlike) if unlike else "")
    elif first_wrong is not None:
        i = first_wrong
        how = (
            t("its greedy answer differs from the adapter's")
            if exact
            else t(
                "its logits differ from the adapter's by {diff} (tolerance {tolerance})",
                diff=f"{diffs[i]:.4g}",
                tolerance=f"{tolerance:g}",
            )
        )
        problem = t(
            "probe prompt {n} ({prompt}): the merged model is not the adapter on its base: {how}",
            n=i + 1,
            prompt=repr(questions[i][:60]),
            how=how,
        )
    return {
        "verdict": "fail" if problem else "pass",
        "problem": problem,
        "dtype": dtype,
        "rule": "tokens identical" if exact else f"max |logit difference| <= {tolerance:g}",
        "tolerance": None if exact else tolerance,
        "max_logit_diff": max(diffs, default=0.0),
        "prompts_differing_from_base": sum(not r["merged_equals_base"] for r in rows),
        "prompts": rows,
        **(extra or {}),
    }
