"""What SFT and GRPO share: the callback that feeds the tracker and honours stop requests, and
checkpoint lookup for `--resume`."""

from __future__ import annotations

from pathlib import Path

from ftmodel.context import StageContext, StageError
from ftmodel.rundir import find_run, list_runs

# TRL's keys → the original project's names (TRL's own keys are logged as well).
RENAMES = {
    "kl": "kl_divergence",
    "rewards/format_reward/mean": "format_reward",
    "rewards/accuracy_reward/mean": "accuracy_reward",
    "rewards/judge_reward/mean": "judge_reward",
}
# Keys of the record logged once when training ends; it describes the whole run, so it goes to the summary.
SUMMARY_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "total_flos")


def make_callback(ctx: StageContext, tracker, judge=None):
    """Build a TrainerCallback that logs every `on_log` through the tracker and stops on request
    (with a judge, its running error and call counts are logged beside the rewards)."""
    from transformers import TrainerCallback

    class StageCallback(TrainerCallback):
        """Mirror trainer logs to metrics.jsonl/wandb; turn a stop request into save-and-stop."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            if any(k in logs for k in SUMMARY_KEYS):
                # The end-of-training record repeats the last step: a second row at the same step would
                # merge into the previous one in wandb but not in metrics.jsonl, so it is summary only.
                tracker.summary(logs)
                return
            for src, dst in RENAMES.items():
                if src in logs:
                    logs[dst] = logs[src]
            if judge is not None:
                logs.update(judge_errors=judge.errors, judge_calls=judge.calls)
            if logs:
                tracker.log(logs, step=state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            ctx.progress(state.global_step, state.max_steps)
            if _any_rank(ctx.stop_requested):
                control.should_save = True  # the checkpoint is the resume point
                control.should_training_stop = True

    return StageCallback()


def _any_rank(flag: bool) -> bool:
    """True if `flag` is set on any rank: ranks must stop at the same step or the rest hang in a collective."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    import torch

    t = torch.tensor([1.0 if flag else 0.0], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def last_checkpoint(run_dir: Path) -> Path | None:
    """Return the newest `checkpoint-N` directory of a run, or None."""
    ckpts = sorted((run_dir / "checkpoints").glob("checkpoint-*"),
                   key=lambda p: int(p.name.rsplit("-", 1)[-1]) if p.name.rsplit("-", 1)[-1].isdigit() else -1)
    return ckpts[-1] if ckpts else None


def resume_checkpoint(ctx: StageContext) -> Path | None:
    """Resolve `--resume [RUN]` to a checkpoint directory (None when not resuming)."""
    ref = ctx.args.get("resume")
    if not ref:
        return None
    if ref == "latest":
        candidates = [r for r in reversed(list_runs(ctx.ws.root, ctx.stage)) if r.id != ctx.run.id and last_checkpoint(r.path)]
        if not candidates:
            raise StageError(f"--resume: no earlier {ctx.stage} run with a checkpoint in {ctx.ws.runs}")
        run_dir = candidates[0].path
    else:
        try:
            run_dir = find_run(ctx.ws.root, ref).path
        except LookupError as e:
            raise StageError(f"--resume: {e.args[0]}") from None
    ckpt = last_checkpoint(run_dir)
    if ckpt is None:
        raise StageError(f"--resume: run {run_dir.name} has no checkpoint to resume from")
    return ckpt



def train_and_save(ctx: StageContext, trainer, tokenizer, tracker, *, resume: Path | None, base: str,
                   parent: str | None) -> dict:
    """Train (from `resume` if given); on a stop request raise Cancelled after the checkpoint is saved,
    else save the adapter on rank 0 (uploaded when wandb.log_model) and return the stage's outputs."""
    from ftmodel.context import Cancelled
    from ftmodel.models import save_adapter

    ctx.progress(0, trainer.args.max_steps if trainer.args.max_steps > 0 else None, force=True)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if ctx.stop_requested:
        ctx.log(f"stopped at step {trainer.state.global_step}; checkpoint saved (resume with --resume {ctx.run.id})")
        raise Cancelled()
    if not ctx.is_main:  # rank 0 saves the adapter; the weights are the same on every rank
        return {}
    adapter = save_adapter(trainer.model, tokenizer, ctx.run.path / "adapter", base=base, stage=ctx.stage,
                           run_id=ctx.run.id, parent=parent)
    if ctx.cfg.wandb.log_model:
        tracker.artifact(adapter, name=f"{ctx.stage}-adapter-{ctx.run.id}", kind="model")
    ctx.log(f"adapter saved to {adapter}")
    return {"adapter": adapter}
