"""What SFT and GRPO share: the callback that feeds the tracker and honours stop requests,
checkpoints that appear whole or not at all, and checkpoint lookup for `--resume`."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from ftmodel.context import StageContext, StageError
from ftmodel.resume import CHECKPOINT_STATE, SAVING_DIR, last_checkpoint  # noqa: F401  (their old home)

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


_TOLD: set[str] = set()  # runs whose resume facts are already in stage.log (preflight and run both resolve it)


def resume_checkpoint(ctx: StageContext) -> Path | None:
    """Resolve `--resume [RUN]` to a checkpoint directory (None when not resuming), after writing what it
    continues from (step, next learning rate, data position, changed config keys) to the stage's log and
    its `resume` record to state.json; a changed model, LoRA shape or (without --force) data is refused."""
    from ftmodel.resume import ResumeError, data_hashes, recorded_inputs, resume_facts, run_state

    ref = ctx.args.get("resume")
    if not ref:
        return None
    told = ctx.run.id in _TOLD
    try:
        facts = resume_facts(
            ctx.ws.root, ctx.stage, ref, ctx.cfg.to_dict(), exclude=ctx.run.id, log=None if told else ctx.log
        )
    except ResumeError as e:
        raise StageError(str(e)) from None
    if not told:
        for line in facts.lines():
            ctx.log(line)
    refusal = facts.refusal(force=bool(ctx.args.get("force")))
    if refusal:
        raise StageError(refusal)
    if not told and ctx.is_main:
        _TOLD.add(ctx.run.id)
        if facts.data_keys:
            ctx.log(f"--resume --force: continuing on changed data ({', '.join(facts.data_keys)})")
        old = recorded_inputs(run_state(ctx.ws.runs / facts.run_id))
        record = {**facts.record(), "logging_steps": ctx.cfg.wandb.log_interval}
        ctx.run.update_state(resume={**record, "inputs": data_hashes(ctx.ws.root, old)})
    return facts.checkpoint


def make_continuity_check(ctx: StageContext, tracker):
    """A TrainerCallback that checks the first logged step of a resumed run continues its checkpoint:
    step = checkpoint step + 1 (or the next logged one), the data position not gone back, the learning
    rate where the schedule continues. The verdict goes to stage.log, state.json (`resume_check`) and
    the wandb summary (`resume/continuous`)."""
    from transformers import TrainerCallback

    from ftmodel.resume import continuity_problem

    record = dict(ctx.run.read_state().get("resume") or {})

    class ContinuityCheck(TrainerCallback):
        done = False

        def on_train_begin(self, args, state, control, **kwargs):
            if isinstance(record.get("schedule"), dict) and state.max_steps > 0:
                # The new run's length decides the schedule's end (its scheduler is built from the new args).
                record["schedule"] = {**record["schedule"], "total": state.max_steps}

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.done or not logs or "learning_rate" not in logs:
                return
            self.done = True
            lr = logs.get("learning_rate")
            lr = float(lr) if isinstance(lr, (int, float)) else None
            problem = continuity_problem(record, state.global_step, lr, state.epoch)
            verdict = {"ok": problem is None, "step": state.global_step, "learning_rate": lr, "epoch": state.epoch}
            if problem:
                verdict["problem"] = problem
                ctx.log(f"RESUME CHECK FAILED: {problem}")
                record_discontinuity(ctx, record, state.global_step, problem)
            else:
                ctx.log(
                    f"resume check: step {state.global_step} follows checkpoint step {record.get('step')}, "
                    f"learning rate {lr:.4g} continues the schedule, epoch {state.epoch:.3f}"
                )
            if ctx.is_main:
                ctx.run.update_state(resume_check=verdict)
                tracker.summary({"resume/continuous": problem is None, "resume/from_step": record.get("step")})

        def on_train_end(self, args, state, control, **kwargs):
            if not self.done and ctx.is_main:
                ctx.log("resume check: no step was logged after the resume; nothing to check")
                ctx.run.update_state(resume_check={"ok": None, "step": state.global_step})

    return ContinuityCheck()


def record_discontinuity(ctx: StageContext, record: dict, step: int, problem: str) -> None:
    """Record the failed continuity check as the sentinel's `resume_discontinuity` alert (alerts.jsonl,
    `ftmodel runs`/`alerts`, the alert command, wandb); with it in `[alerts] stop_on` the run saves and stops."""
    import time

    from ftmodel.sentinel.alerts import Alert, record_alerts, stops_on

    if not ctx.is_main:
        return
    rule = "resume_discontinuity"
    alert = Alert(
        rule=rule,
        stage=ctx.stage,
        step=step,
        time=time.time(),
        key=f"{rule}@{step}",
        values={"checkpoint_step": record.get("step"), "step": step},
        params={"run": str(record.get("from_run")), "problem": problem, "checkpoint": str(record.get("checkpoint"))},
    )
    for new in record_alerts(ctx.run, [alert], ctx.cfg.alerts, source="trainer", log=ctx.log):
        if stops_on(ctx.cfg.alerts, new.rule):
            ctx.request_stop(f"stopped by the sentinel ({rule}): {new.message}")


def train_and_save(
    ctx: StageContext, trainer, tokenizer, tracker, *, resume: Path | None, base: str, parent: str | None
) -> dict:
    """Train (from `resume` if given); on a stop request raise Cancelled after the checkpoint is saved,
    else save the adapter on rank 0 (uploaded when wandb.log_model) and return the stage's outputs."""
    from ftmodel.context import Cancelled
    from ftmodel.models import save_adapter

    ctx.progress(0, trainer.args.max_steps if trainer.args.max_steps > 0 else None, force=True)
    save_checkpoints_atomically(trainer)
    if resume:
        trainer.add_callback(make_continuity_check(ctx, tracker))
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
