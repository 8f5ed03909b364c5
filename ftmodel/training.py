"""What SFT and GRPO share: the callback that feeds the tracker and honours stop requests,
checkpoints that appear whole or not at all, and checkpoint lookup for `--resume`."""

from __future__ import annotations

import contextlib
import os
import shutil
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


# A checkpoint is saved under this hidden folder of the checkpoints dir and renamed into place when whole.
SAVING_DIR = ".saving"
CHECKPOINT_STATE = "trainer_state.json"  # transformers writes it last: a checkpoint without it is partial


def _step_of(path: Path) -> int:
    tail = path.name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def last_checkpoint(run_dir: Path, log=None) -> Path | None:
    """Return the newest complete `checkpoint-N` directory of a run, or None.

    A checkpoint without trainer_state.json was cut short (a kill or a full disk during a save
    made before saves were atomic), and a folder left in `checkpoints/.saving/` is a save that
    never finished: both are skipped, and `log` is told each one it skips.
    """
    root = Path(run_dir) / "checkpoints"
    ckpts = sorted(root.glob("checkpoint-*"), key=_step_of, reverse=True)
    chosen = next((c for c in ckpts if c.is_dir() and (c / CHECKPOINT_STATE).is_file()), None)
    if log is not None:
        floor = _step_of(chosen) if chosen else -1
        skipped = [c for c in ckpts if c is not chosen and _step_of(c) > floor]
        skipped += [c for c in (root / SAVING_DIR).glob("checkpoint-*") if _step_of(c) >= floor]
        for ckpt in sorted(skipped, key=_step_of, reverse=True):
            log(f"--resume: skipping incomplete checkpoint {ckpt} (its save was cut short)")
    return chosen


def save_checkpoints_atomically(trainer) -> None:
    """Make the trainer write each checkpoint to `checkpoints/.saving/checkpoint-N` and rename it into
    place when whole, so a kill during a save never leaves a partial newest `checkpoint-N`.

    transformers writes `checkpoint-N` in place (model, optimizer, RNG, then trainer_state.json) and
    then deletes the oldest beyond save_total_limit. This wraps the instance's `_save_checkpoint`
    (TRL's SFT/GRPO overrides included): the save runs against a staging output dir, the finished
    folder is renamed beside the others, and only then are old ones rotated away.
    """
    from ftmodel.checkpoints import protected_checkpoint

    inner = trainer._save_checkpoint
    final_root = Path(trainer.args.output_dir)
    staging = final_root / SAVING_DIR

    def _save_checkpoint(model, trial):
        if trial is not None or getattr(trainer, "hp_search_backend", None) is not None:
            return inner(model, trial)  # hyper-parameter search keeps its own layout
        name = f"checkpoint-{trainer.state.global_step}"
        if trainer.args.should_save:
            shutil.rmtree(staging / name, ignore_errors=True)  # a leftover of a save killed earlier
        trainer.args.output_dir = str(staging)
        try:
            inner(model, trial)
        finally:
            trainer.args.output_dir = str(final_root)
        _barrier()  # every rank has written its part before rank 0 publishes the folder
        if not trainer.args.should_save:
            return
        final = final_root / name
        if final.exists():  # saved twice at one step (a stop on a save step): the newer one wins
            shutil.rmtree(final)
        os.replace(staging / name, final)
        _fsync_dir(final_root)
        for extra in list(staging.iterdir()):  # TRL's model card lands beside the checkpoints, where it always was
            if not extra.name.startswith("checkpoint-"):
                os.replace(extra, final_root / extra.name)
        with contextlib.suppress(OSError):
            staging.rmdir()  # nothing left mid-save: no hidden folder to wonder about
        if trainer.state.best_model_checkpoint and Path(trainer.state.best_model_checkpoint).parent == staging:
            trainer.state.best_model_checkpoint = str(final_root / Path(trainer.state.best_model_checkpoint).name)
        rotate_keeping_best(
            final_root,
            trainer.args.save_total_limit,
            protected_checkpoint(final_root) or trainer.state.best_model_checkpoint,
        )

    trainer._save_checkpoint = _save_checkpoint


def rotate_keeping_best(output_dir: Path, save_total_limit: int | None, best: str | None) -> None:
    """Delete the oldest checkpoints beyond save_total_limit, never the newest (the resume point) nor
    `best` (the probe's best step, see ftmodel/probe.py): with both, two are kept even at a limit of 1."""
    from transformers.trainer_utils import rotate_checkpoints

    rotate_checkpoints(
        output_dir=str(output_dir), save_total_limit=save_total_limit, best_model_checkpoint=best, use_mtime=True
    )


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry (the rename) to disk, where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def resume_checkpoint(ctx: StageContext) -> Path | None:
    """Resolve `--resume [RUN]` to a checkpoint directory (None when not resuming)."""
    ref = ctx.args.get("resume")
    if not ref:
        return None
    if ref == "latest":
        for run in reversed(list_runs(ctx.ws.root, ctx.stage)):
            if run.id != ctx.run.id and (ckpt := last_checkpoint(run.path, log=ctx.log)):
                return ckpt
        raise StageError(f"--resume: no earlier {ctx.stage} run with a complete checkpoint in {ctx.ws.runs}")
    try:
        run_dir = find_run(ctx.ws.root, ref).path
    except LookupError as e:
        raise StageError(f"--resume: {e.args[0]}") from None
    ckpt = last_checkpoint(run_dir, log=ctx.log)
    if ckpt is None:
        raise StageError(f"--resume: run {run_dir.name} has no complete checkpoint to resume from")
    return ckpt


def train_and_save(
    ctx: StageContext, trainer, tokenizer, tracker, *, resume: Path | None, base: str, parent: str | None
) -> dict:
    """Train (from `resume` if given); on a stop request raise Cancelled after the checkpoint is saved,
    else save the adapter on rank 0 (uploaded when wandb.log_model) and return the stage's outputs."""
    from ftmodel.context import Cancelled
    from ftmodel.models import save_adapter

    ctx.progress(0, trainer.args.max_steps if trainer.args.max_steps > 0 else None, force=True)
    save_checkpoints_atomically(trainer)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if ctx.stop_requested:
        ctx.log(f"stopped at step {trainer.state.global_step}; checkpoint saved (resume with --resume {ctx.run.id})")
        raise Cancelled()
    if not ctx.is_main:  # rank 0 saves the adapter; the weights are the same on every rank
        return {}
    adapter = save_adapter(
        trainer.model, tokenizer, ctx.run.path / "adapter", base=base, stage=ctx.stage, run_id=ctx.run.id, parent=parent
    )
    if ctx.cfg.wandb.log_model:
        tracker.artifact(adapter, name=f"{ctx.stage}-adapter-{ctx.run.id}", kind="model")
    ctx.log(f"adapter saved to {adapter}")
    return {"adapter": adapter}
