"""Run stages in order as one job: each stage gets its own run directory, grouped under this one.

The driver is itself a run (stage `pipeline`). Its stages run in its process group, so stopping
the pipeline stops the stage in flight too; a stage that does not finish stops the pipeline.
"""

from __future__ import annotations

from ftmodel import config as config_mod
from ftmodel.context import Cancelled, StageContext, StageError
from ftmodel.contracts import StageContract
from ftmodel.i18n import t
from ftmodel.rundir import STAGES, create_run, partial_note
from ftmodel.words import PIPELINE

# Never reused as a whole: each of its stages is fingerprinted (and reused) on its own.
CONTRACT = StageContract(PIPELINE, reusable=False)


def selected_stages(spec: str | None) -> list[str]:
    """Parse `--stages a,b,…` into pipeline order; unknown names are an error."""
    if not spec:
        return list(STAGES)
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise StageError(
            t(
                "--stages: unknown stage {unknown} (stages: {stages})",
                unknown=", ".join(unknown),
                stages=", ".join(STAGES),
            )
        )
    return [s for s in STAGES if s in wanted]


def preflight(ctx: StageContext) -> None:
    """Check the stage list (the launcher then checks the first stage's own preconditions)."""
    selected_stages(ctx.args.get("stages"))


def first_stage(args: dict) -> str:
    """The stage the pipeline starts with (its preconditions are the pipeline's)."""
    return selected_stages(args.get("stages"))[0]


def child_args(stage: str, args: dict, produced: dict[str, str]) -> dict:
    """A stage's args inside the pipeline: the shared flags, and the runs this pipeline made for it to consume."""
    out = {k: v for k, v in args.items() if k in ("workspace", "no_judge", "sweep", "queue_job")}
    if stage == "grpo" and "sft" in produced:
        out["sft_run"] = produced["sft"]
    if stage == "evaluate":
        which = "sft" if args.get("eval_sft") else "grpo"
        out.update({"eval_sft": True} if args.get("eval_sft") else {})
        if which in produced:
            out["adapter_run"] = produced[which]
    return out


def run(ctx: StageContext) -> dict:
    """Run each selected stage as a child run and wait for it; a stage with the inputs of a finished
    run reuses that run (unless `force`)."""
    from ftmodel.fingerprint import plan_stage, record_reuse

    stages = selected_stages(ctx.args.get("stages"))
    snapshot = config_mod.to_toml(ctx.cfg)
    children: list[str] = []
    produced: dict[str, str] = {}
    reused: list[str] = []
    ctx.progress(0, len(stages), force=True)
    for i, stage in enumerate(stages):
        ctx.check_stop()
        plan = plan_stage(
            ctx.contract_of(stage),
            ctx.cfg,
            ctx.ws.root,
            child_args(stage, ctx.args, produced),
            reuse=not ctx.args.get("force"),
        )
        found, fp, args = plan.reused, plan.fingerprint, plan.args
        if found is not None:
            record_reuse(found, by=ctx.run.id)
            children.append(found.id)
            reused.append(found.id)
            produced[stage] = found.id
            ctx.run.update_state(children=children, reused=reused)
            ctx.log(f"==> {stage} ({i + 1}/{len(stages)}): reusing {found.id} (same inputs)")
            ctx.progress(i + 1, len(stages), force=True)
            continue
        child = create_run(
            ctx.ws.root,
            stage,
            config_toml=snapshot,
            argv=ctx.run.read_state().get("argv", []),
            args=args,
            group=ctx.run.id,
        )
        child.update_state(fingerprint=fp.as_state(), lineage=fp.lineage)
        children.append(child.id)
        produced[stage] = child.id
        ctx.run.update_state(children=children, current=stage)
        ctx.log(
            f"==> {stage} ({i + 1}/{len(stages)}): run {child.id}"
            + (f" ({fp.missing})" if fp.digest is None and fp.applicable else "")
            + (f" ({plan.why})" if plan.refused else "")
        )
        # Same process group as the driver: stopping the pipeline stops the stage in flight.
        proc = ctx.launch(child, new_session=False, launch_cfg=ctx.cfg.launch)
        proc.wait()  # a SIGINT reaches the stage too; the wait resumes after our handler runs
        status = child.status()
        if status != "finished":
            if ctx.stop_requested or status == "cancelled":
                raise Cancelled()
            error = child.read_state().get("error") or f"exit {proc.returncode}"
            raise StageError(
                t(
                    "stage {stage} {status}: {error} (log: {log})",
                    stage=stage,
                    status=t(status),
                    error=error,
                    log=child.log_path,
                )
            )
        child_state = child.read_state()
        note = partial_note(child_state)
        if note:  # the pipeline is only as whole as its stages (the next pipeline reruns this one)
            mark = child_state["partial"] if isinstance(child_state.get("partial"), dict) else {}
            missing = mark.get("missing")
            ctx.mark_partial(
                f"{child.id} is partial: {note}",
                missing=missing if isinstance(missing, int) and not isinstance(missing, bool) else 1,
                retry=f"run {stage} again",
            )
        ctx.progress(i + 1, len(stages), force=True)
    ctx.run.update_state(current=None)
    return {"children": ",".join(children)}
