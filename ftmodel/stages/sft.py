"""Stage 4 — sft: LoRA supervised fine-tuning with TRL's SFTTrainer on data/sft.jsonl.

Loss is computed on the completion (the worked solution) only. A stop request saves a checkpoint
and records `cancelled`; `--resume` continues from the newest checkpoint.
"""

from __future__ import annotations

from ftmodel.context import StageContext, StageError
from ftmodel.contracts import StageContract
from ftmodel.data.loaders import read_jsonl
from ftmodel.i18n import t
from ftmodel.models import check_model_source
from ftmodel.rundir import ADAPTER_DIR
from ftmodel.training import resume_checkpoint
from ftmodel.workspace import RAW_EVAL, SFT_DATA

CONTRACT = StageContract(
    "sft",
    reads=(
        "model",
        "lora",
        "sft",
        "data.system_prompt",
        "launch.launcher",
        "launch.num_processes",
        "launch.num_machines",  # ranks change the effective batch
        # The probe at checkpoints: which checkpoint is best (best.json, the one rotation keeps).
        "probe",
        "answers",
        "eval.batch_size",
        "eval.max_new_tokens",
    ),
    inputs=(SFT_DATA, RAW_EVAL),  # the eval split holds the probe's questions
    run_outputs=(f"{ADAPTER_DIR}/adapter_config.json",),  # reused only while its adapter is there
)


def preflight(ctx: StageContext) -> None:
    """Check the SFT data, the base model and the resume point before any model loads."""
    if not ctx.ws.sft_data.exists():
        raise StageError(t("{path} not found: run `ftmodel {stage}` first", path=ctx.ws.sft_data, stage="filter"))
    if ctx.ws.sft_data.stat().st_size == 0:
        raise StageError(t("{path} is empty: the filter kept no samples", path=ctx.ws.sft_data))
    check_model_source(ctx.cfg)
    if ctx.run.path.exists():  # not during the CLI's own check, where the run does not exist yet
        resume_checkpoint(ctx)


def wandb_config(ctx: StageContext, base: str) -> dict:
    """The config fields the original project logged for SFT."""
    c = ctx.cfg
    return {
        "model_name": c.model.name_or_path,
        "base_path": base,
        "lora_r": c.lora.r,
        "lora_alpha": c.lora.alpha,
        "lora_dropout": c.lora.dropout,
        "batch_size": c.sft.batch_size,
        "grad_accum": c.sft.grad_accum,
        "learning_rate": c.sft.learning_rate,
        "epochs": c.sft.epochs,
        "max_steps": c.sft.max_steps,
    }


def dataset_rows(samples: list[dict], system_prompt: str) -> list[dict]:
    """Prompt-completion rows: the loss is computed on the worked solution only."""
    from ftmodel.prompts import prompt_messages

    return [
        {
            "prompt": prompt_messages(s["question"], system_prompt),
            "completion": [{"role": "assistant", "content": s["solution"]}],
        }
        for s in samples
    ]


def check_lengths(ctx: StageContext, tokenizer, samples: list[dict]) -> list[dict]:
    """Measure samples against model.max_seq_length before training; warn, drop or refuse
    (sft.on_long_samples) rather than let the trainer cut answers off in silence."""
    from ftmodel.data.lengths import length_stats, sample_lengths, truncation_warning

    _, lengths = sample_lengths(tokenizer, samples, ctx.cfg.data.system_prompt)
    limit = ctx.cfg.model.max_seq_length
    stats = length_stats(lengths, limit)
    warning = truncation_warning(stats, "SFT samples")
    if not warning:
        ctx.log(
            f"sample lengths: p50 {stats.p50}, p99 {stats.p99}, max {stats.max} tokens; "
            f"all within model.max_seq_length = {limit}"
        )
        return samples
    mode = ctx.cfg.sft.on_long_samples
    if mode == "error":
        raise StageError(t('{warning} (sft.on_long_samples = "error")', warning=warning))
    if mode == "drop":
        kept = [s for s, n in zip(samples, lengths) if n <= limit]
        if not kept:
            raise StageError(
                t('{warning} Dropping them (sft.on_long_samples = "drop") leaves no sample.', warning=warning)
            )
        ctx.log(f'WARNING: {warning} Dropping them (sft.on_long_samples = "drop"): {len(kept)} samples left.')
        return kept
    ctx.log(f"WARNING: {warning}")
    return samples


def trainer_args(c, output_dir: str):
    """TRL's SFTConfig for this config (also what bench/ gives plain TRL, so both train alike)."""
    from trl import SFTConfig

    from ftmodel.models import trainer_precision

    return SFTConfig(
        output_dir=output_dir,
        learning_rate=c.sft.learning_rate,
        lr_scheduler_type=c.sft.lr_scheduler,
        warmup_steps=c.sft.warmup_ratio,
        num_train_epochs=c.sft.epochs,
        max_steps=c.sft.max_steps or -1,
        per_device_train_batch_size=c.sft.batch_size,
        gradient_accumulation_steps=c.sft.grad_accum,
        logging_steps=c.wandb.log_interval,
        save_steps=c.sft.save_steps,
        save_total_limit=c.sft.save_total_limit,
        seed=c.sft.seed,
        max_length=c.model.max_seq_length,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        **trainer_precision(c),
    )


def run(ctx: StageContext) -> dict:
    """Train the adapter and save it to `<run>/adapter`."""
    from datasets import Dataset
    from trl import SFTTrainer

    from ftmodel.models import load_base_model, load_tokenizer, lora_config, resolve_base
    from ftmodel.probe import best_outputs, make_probe_callback
    from ftmodel.training import make_callback, train_and_save

    c = ctx.cfg
    resume = resume_checkpoint(ctx)
    samples = read_jsonl(ctx.ws.sft_data)
    base = resolve_base(ctx)
    tokenizer = load_tokenizer(base, c)
    samples = check_lengths(ctx, tokenizer, samples)
    rows = dataset_rows(samples, c.data.system_prompt)
    ctx.log(f"{len(rows)} samples; base {base}" + (f"; resuming from {resume}" if resume else ""))
    model = load_base_model(base, c)
    args = trainer_args(c, str(ctx.run.path / "checkpoints"))
    tracker = ctx.tracker(
        run_name=ctx.run_name(c.wandb.run_name_sft), tags=["sft"], wandb_config=wandb_config(ctx, base)
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(c),
        callbacks=[make_callback(ctx, tracker), make_probe_callback(ctx, tracker, base=base, parent=None)],
    )
    outputs = train_and_save(ctx, trainer, tokenizer, tracker, resume=resume, base=base, parent=None)
    return {**outputs, **best_outputs(ctx)} if outputs else outputs
