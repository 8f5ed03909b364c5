"""Stage 7 — export: merge a LoRA adapter into its base and save a standalone model."""

from __future__ import annotations

from ftmodel.context import StageContext, StageError
from ftmodel.contracts import StageContract
from ftmodel.export_check import REPORT
from ftmodel.i18n import t
from ftmodel.models import find_adapter
from ftmodel.rundir import latest_run
from ftmodel.textio import write_json

# Never reused: it writes a merged model wherever asked, cheap to redo relative to its risk.
CONTRACT = StageContract("export", reusable=False)


def choose_adapter(ctx: StageContext):
    """`--adapter` if given, else the latest GRPO adapter, else the latest SFT one (`--checkpoint`
    picks one of that run's checkpoints)."""
    checkpoint = ctx.args.get("checkpoint")
    if ctx.args.get("adapter"):
        return find_adapter(ctx.ws, ctx.args["adapter"], "grpo", checkpoint)
    for stage in ("grpo", "sft"):
        if latest_run(ctx.ws.root, stage):
            return find_adapter(ctx.ws, None, stage, checkpoint)
    raise StageError(t("no finished grpo or sft run in {path}: nothing to export", path=ctx.ws.runs))


def preflight(ctx: StageContext) -> None:
    """Check there is an adapter to merge."""
    choose_adapter(ctx)


def run(ctx: StageContext) -> dict:
    """Merge the adapter (embeddings included) into the base weights and save to `<run>/merged`."""
    from ftmodel.models import adapter_meta, load_adapter_model

    adapter = choose_adapter(ctx)
    model, tokenizer, base = load_adapter_model(adapter, ctx.cfg)
    ctx.log(f"merging {adapter} into {base}")
    merged = model.merge_and_unload()
    out = ctx.run.path / "merged"
    merged.save_pretrained(str(out))
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(str(out))
    write_json(out / "ftmodel_export.json", {"adapter": str(adapter), **adapter_meta(adapter)})
    ctx.log(f"standalone model saved to {out} (load it with AutoModelForCausalLM.from_pretrained)")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    parameters = sum(p.numel() for p in merged.parameters())
    del model, merged  # the check loads the saved model back, beside the adapter and the base
    tracker = ctx.tracker(
        run_name=ctx.run_name(), tags=["export"], wandb_config={"adapter": str(adapter), "base": base}
    )
    tracker.log({"export/parameters": parameters, "export/bytes": size}, step=0)
    check_merge(ctx, tracker, out, adapter)
    if ctx.cfg.wandb.log_model:
        tracker.artifact(out, name=f"merged-{ctx.run.id}", kind="model")
    return {"merged": out, "export_check": ctx.run.path / REPORT}


def check_merge(ctx: StageContext, tracker, merged_dir, adapter) -> dict | None:
    """Compare the saved merged model with the adapter on its base and with the base on
    `export.probe_prompts` held-out questions; write `export_check.json` and the wandb summary, and
    fail the stage (naming the first prompt, or saying nothing changed) when the merge is wrong."""
    from ftmodel.export_check import probe_questions, verify_export

    k = ctx.cfg.export.probe_prompts
    if k == 0:
        ctx.log("export check skipped (export.probe_prompts = 0)")
        return None
    questions = probe_questions(ctx.ws.raw_eval, k)
    ctx.log(f"export check: {len(questions)} probe prompts, {ctx.cfg.export.probe_max_new_tokens} greedy tokens each")
    report = verify_export(merged_dir, adapter, ctx.cfg, questions, log=ctx.log)
    write_json(ctx.run.path / REPORT, report)
    tracker.summary(
        {
            "export/check_passed": report["verdict"] == "pass",
            "export/max_logit_diff": report["max_logit_diff"],
            "export/prompts_differing_from_base": report["prompts_differing_from_base"],
            "export/probe_prompts": len(questions),
        }
    )
    tracker.table(
        "export_check",
        ["prompt", "base", "adapter", "merged", "max_logit_diff"],
        [[r["prompt"], r["base"], r["adapter"], r["merged"], r["max_logit_diff"]] for r in report["prompts"]],
    )
    if report["problem"]:
        raise StageError(
            t("export check failed ({path}): {problem}", path=ctx.run.path / REPORT, problem=report["problem"])
        )
    ctx.log(
        f"export check passed ({report['rule']}, dtype {report['dtype']}): the merged model answers as the adapter "
        f"on its base on all {len(questions)} probe prompts (largest logit difference "
        f"{report['max_logit_diff']:.3g}) and differs from the base on {report['prompts_differing_from_base']}"
    )
    return report
