"""Stage 7 — export: merge a LoRA adapter into its base and save a standalone model."""

from __future__ import annotations

from ftmodel.context import StageContext, StageError
from ftmodel.contracts import StageContract
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
    raise StageError(f"no finished grpo or sft run in {ctx.ws.runs}: nothing to export")


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
    tracker = ctx.tracker(
        run_name=ctx.run_name(), tags=["export"], wandb_config={"adapter": str(adapter), "base": base}
    )
    tracker.log({"export/parameters": sum(p.numel() for p in merged.parameters()), "export/bytes": size}, step=0)
    if ctx.cfg.wandb.log_model:
        tracker.artifact(out, name=f"merged-{ctx.run.id}", kind="model")
    return {"merged": out}
