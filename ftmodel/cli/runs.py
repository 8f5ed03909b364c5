"""Stages and run management: `ftmodel <stage>|pipeline`, `config check`, `runs`, `stop`, `logs`,
`follow`, `lineage`.

Each stage runs as a subprocess in its own run directory (the same mechanism the console uses).
By default the command follows the run's log in the foreground; Ctrl-C stops the run gracefully,
a second Ctrl-C detaches and leaves it running. `--detach` starts it and returns at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ftmodel import config as config_mod
from ftmodel.cli.alerts import AlertFollower, alerts_cell, stall_check
from ftmodel.cli.common import add_common, add_workspace, load_config, workspace_of
from ftmodel.i18n import t
from ftmodel.launcher import run_status, start_stage, stop
from ftmodel.rundir import ACTIVE_STATES, BROKEN, STAGES, Run, find_run, list_runs
from ftmodel.textio import pad, printable
from ftmodel.words import PIPELINE

RUN_COMMANDS = ("stop", "logs", "follow", "lineage")
# What each stage does, as `ftmodel --help` lists it (each an id of the catalog: the help is translated).
STAGE_HELP = {
    "prepare": "stage 1: build the question bank, normalise it, split train/eval",
    "distill": "stage 2: a teacher model writes worked solutions (resumable)",
    "filter": "stage 3: keep well-formed, correct, non-duplicate samples",
    "sft": "stage 4: LoRA supervised fine-tuning (TRL SFTTrainer)",
    "grpo": "stage 5: GRPO from the SFT adapter, rewarding format and accuracy",
    "evaluate": "stage 6: score format and answer accuracy on the eval split",
    "export": "stage 7: merge a LoRA adapter into its base, save a standalone model",
    "ablation": "stage 8: evaluate base, SFT-only and SFT+GRPO side by side",
}


def add_parsers(sub) -> None:
    """Register the stages, the pipeline, `config check` and the run-management commands."""
    for stage in STAGES:
        p = sub.add_parser(stage, help=STAGE_HELP[stage], description=STAGE_HELP[stage])
        add_common(p)
        if stage in ("sft", "grpo"):
            p.add_argument(
                "--resume",
                nargs="?",
                const="latest",
                metavar="RUN",
                help="resume from the last checkpoint of RUN (default: the latest run of this stage)",
            )
        if stage in ("grpo", "evaluate", "ablation"):
            p.add_argument(
                "--no-judge", "--no_judge", dest="no_judge", action="store_true", help="do not use the LLM judge"
            )
        if stage == "grpo":
            p.add_argument("--sft-run", metavar="RUN", help="SFT run whose adapter GRPO starts from (default: latest)")
        if stage == "evaluate":
            p.add_argument(
                "--eval-sft",
                "--eval_sft",
                dest="eval_sft",
                action="store_true",
                help="evaluate the SFT adapter instead of the GRPO one",
            )
            p.add_argument("--model", choices=("base", "sft", "grpo"), help="which model to evaluate")
            p.add_argument("--adapter", metavar="RUN|DIR", help="evaluate this run's adapter or adapter directory")
        if stage == "export":
            p.add_argument("--adapter", metavar="RUN|DIR", help="adapter to merge (default: latest GRPO, else SFT)")
        if stage in ("grpo", "evaluate", "export"):
            p.add_argument(
                "--checkpoint",
                type=_checkpoint_choice,
                metavar="best|last|STEP",
                help="which of the run's checkpoints to load: `best` (the probe's best step, best.json), "
                "`last` (the final adapter, the default) or a step number",
            )
    p = sub.add_parser(PIPELINE, help="run stages in order, as one detached job")
    add_common(p)
    p.add_argument("--stages", help="comma-separated subset of the stages, run in pipeline order (default: all)")
    p.add_argument("--no-judge", "--no_judge", dest="no_judge", action="store_true", help="do not use the LLM judge")

    p = sub.add_parser("config", help="config tools")
    csub = p.add_subparsers(dest="config_command", required=True)
    c = csub.add_parser("check", help="validate a config without running anything")
    c.add_argument("file")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")

    p = sub.add_parser("runs", help="list the workspace's runs")
    add_workspace(p)
    p.add_argument("--stage", choices=(*STAGES, PIPELINE))
    for name, text in (
        ("stop", "stop a run gracefully (SIGINT, then SIGTERM, then SIGKILL)"),
        ("logs", "print a run's log"),
        ("follow", "follow a run's log until it ends"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("run", help="run id (or a unique prefix)")
        add_workspace(p)
        if name == "stop":
            p.add_argument("--now", action="store_true", help="stop at once (SIGTERM) without saving a checkpoint")
    p = sub.add_parser("lineage", help="show what a run consumed: evaluate ← grpo ← sft ← filter ← data hashes")
    p.add_argument("run", help="run id (or a unique prefix)")
    add_workspace(p)


def _checkpoint_choice(value: str) -> str:
    """argparse type of `--checkpoint`: best, last or a step number, refused by name otherwise."""
    from ftmodel.checkpoints import parse_checkpoint

    try:
        return parse_checkpoint(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _stage_args(ns: argparse.Namespace) -> dict:
    """Collect the stage flags recorded in state.json (what the worker reads)."""
    keep = ("resume", "no_judge", "sft_run", "eval_sft", "model", "adapter", "checkpoint", "stages")
    if getattr(ns, "force", False) and (ns.command == PIPELINE or getattr(ns, "resume", None)):
        # the driver decides per stage; a single stage's --force acts here, and a resume's in the worker
        keep += ("force",)
    return {k: getattr(ns, k) for k in keep if getattr(ns, k, None) not in (None, False)}


def follow(run: Run, out=None, poll: float = 0.2) -> int:
    """Print the run's log (and its child runs' logs) until it ends, and each alert the sentinel records
    for them (checking running ones for a stall now and then); return its exit code."""
    out = out or sys.stdout
    offsets: dict[Path, int] = {}

    def pump() -> bool:
        paths = [run.log_path]
        for child in run.read_state().get("children", []):
            paths.append(run.path.parent / child / "stage.log")
        moved = False
        for path in paths:
            try:
                with open(path, "rb") as fh:
                    fh.seek(offsets.get(path, 0))
                    data = fh.read()
            except OSError:
                continue
            if data:
                offsets[path] = offsets.get(path, 0) + len(data)
                out.write(data.decode("utf-8", "replace"))
                out.flush()
                moved = True
        return moved

    alerts = AlertFollower(lambda text: (out.write(text), out.flush()))
    interrupted = False
    while True:
        try:
            moved = pump()
            children = [Run(run.path.parent / c) for c in run.read_state().get("children", [])]
            moved = alerts.pump([run, *children]) or moved
            if run_status(run) not in ACTIVE_STATES and not moved:
                break
            time.sleep(poll)
        except KeyboardInterrupt:
            if interrupted:
                print("\n" + t("detached: run {run} keeps going (`ftmodel stop {run}` stops it)", run=run.id), file=out)
                return 0
            interrupted = True
            print("\n" + t("stopping {run} gracefully (Ctrl-C again to detach)...", run=run.id), file=out, flush=True)
            try:
                stop(run)
            except KeyboardInterrupt:
                print("\n" + t("detached: run {run} keeps going (`ftmodel stop {run}` stops it)", run=run.id), file=out)
                return 0
    status = run_status(run)
    code = run.read_state().get("exit_code")
    print(
        f"{run.id}: {t(status)}"
        + (f" (exit {code})" if code not in (None, 0) else "")
        + (f": {run.problem()}" if status == BROKEN else ""),
        file=out,
        flush=True,
    )
    if status in ("lost", BROKEN):
        return 1
    return int(code or 0)


def cmd_stage(ns: argparse.Namespace, argv: list[str]) -> int:
    """`ftmodel <stage>` and `ftmodel pipeline`: start a run, then follow it unless --detach."""
    cfg = load_config(ns)
    workspace = Path(ns.workspace or cfg.launch.workspace)
    stage = ns.command
    if getattr(ns, "resume", None) and not tell_resume(stage, cfg, workspace, ns.resume, bool(ns.force)):
        return 2
    run, proc = start_stage(
        stage,
        cfg,
        workspace,
        _stage_args(ns),
        argv=["ftmodel", *argv],
        reuse=not ns.force and stage != PIPELINE,
        report=lambda msg: print(msg, flush=True),
    )
    if proc is None:  # a finished run had the same inputs: nothing to run (`--force` reruns)
        print(
            f"{stage}: {run.path} ("
            + t("`ftmodel lineage {run}` shows what it consumed; --force reruns", run=run.id)
            + ")"
        )
        return 0
    print(t("{stage}: run {run} ({path})", stage=stage, run=run.id, path=run.path), flush=True)
    if ns.detach:
        print(
            t("detached; follow with `ftmodel follow {run} --workspace {workspace}`", run=run.id, workspace=workspace)
        )
        return 0
    return follow(run)


def tell_resume(stage: str, cfg, workspace: Path, ref: str, force: bool) -> bool:
    """Print what a resume continues from to stderr; False (and why, on stderr) when it is refused."""
    from ftmodel.resume import ResumeError, resume_facts

    try:
        facts = resume_facts(workspace, stage, ref, cfg.to_dict(), log=lambda m: print(printable(m), file=sys.stderr))
    except ResumeError as e:
        print(printable(t("error: {message}", message=e)), file=sys.stderr)
        return False
    for line in facts.lines():
        print(printable(line), file=sys.stderr)
    refusal = facts.refusal(force)
    if refusal:
        print(printable(t("error: {message}", message=refusal)), file=sys.stderr)
        return False
    return True


def cmd_runs(ns: argparse.Namespace, argv: list[str]) -> int:
    """`ftmodel runs`: every run of the workspace, broken ones included."""
    workspace = workspace_of(ns)
    # Broken run dirs (no or corrupt state.json) are listed too: a run must never silently disappear.
    runs = list_runs(workspace, ns.stage, include_broken=not ns.stage)
    if not runs:
        print(t("no runs in {path}", path=workspace / "runs"))
        return 0
    print(
        " ".join(
            [
                pad(t("run"), 34),
                pad(t("stage"), 9),
                pad(t("state"), 10),
                pad(t("progress"), 12, right=True),
                pad(t("duration"), 9, right=True),
                t("alerts"),
            ]
        )
    )
    for run in runs:
        st = run.read_state()  # coerced to the expected shape: a foreign state.json cannot crash this
        prog = st.get("progress") or {}
        progress = f"{prog.get('step', 0)}/{prog.get('total') or '?'}"
        start, end = st.get("started"), st.get("ended") or time.time()
        duration = f"{end - start:8.0f}s" if start else ""
        status = run_status(run)  # a Slurm run asks the scheduler (and records a job it killed)
        stall_check(run, status, "ftmodel runs")  # a stall nobody was watching is found now
        shown = f"{t(BROKEN)}: {run.problem()}" if status == BROKEN else t(status)
        # The id is a directory's name and the rest comes from state.json: shown, never obeyed.
        line = f"{run.id:34} {st.get('stage', '?'):9} {pad(shown, 10)} {progress:>12} {duration:>9} {alerts_cell(run)}"
        print(printable(line.rstrip()))
    return 0


def cmd_config(ns: argparse.Namespace, argv: list[str]) -> int:
    """`ftmodel config check FILE`."""
    cfg = config_mod.load(ns.file, ns.overrides)
    print(
        t(
            "{file}: ok ({sections} sections; model {model}, wandb {mode})",
            file=ns.file,
            sections=len(config_mod.SECTIONS),
            model=cfg.model.name_or_path,
            mode=cfg.wandb.mode,
        )
    )
    return 0


def cmd_run(ns: argparse.Namespace, argv: list[str]) -> int:
    """`stop`, `logs`, `follow`, `lineage` on one run (only a directory inside <workspace>/runs)."""
    run = find_run(workspace_of(ns), ns.run)
    if ns.command == "lineage":
        from ftmodel.fingerprint import lineage_lines

        print("\n".join(lineage_lines(workspace_of(ns), run)))
        return 0
    if ns.command == "stop":
        print(f"{run.id}: {stop(run, now=ns.now, report=lambda msg: print(msg, flush=True))}")
        return 0
    if ns.command == "logs":
        if run.problem():  # the log is still worth reading; say the run itself is broken
            print(t("warning: run {run} is broken: {problem}", run=run.id, problem=run.problem()), file=sys.stderr)
        sys.stdout.write(run.log_path.read_text(encoding="utf-8", errors="replace") if run.log_path.exists() else "")
        return 0
    run.check_state()  # a missing or corrupt state.json is an error, not "unknown"
    return follow(run)
