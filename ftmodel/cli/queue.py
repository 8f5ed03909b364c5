"""`ftmodel queue …` and `ftmodel sweep …`: the overnight queue and grid sweeps, headless."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ftmodel.cli.common import add_config, add_workspace, load_config, workspace_of
from ftmodel.i18n import t
from ftmodel.rundir import STAGES
from ftmodel.words import PIPELINE


def add_parsers(sub) -> None:
    """Register `queue` and `sweep` with the main parser."""
    p = sub.add_parser("queue", help="the workspace's job queue, drained by a detached runner")
    qsub = p.add_subparsers(dest="queue_command", required=True)
    q = qsub.add_parser("ls", help="list jobs and their states")
    add_workspace(q)
    q = qsub.add_parser("add", help="queue a stage (or the pipeline) with this config; the runner starts it")
    q.add_argument("stage", choices=(*STAGES, PIPELINE))
    q.add_argument("--stages", help="pipeline: comma-separated subset of stages")
    q.add_argument("--force", action="store_true", help="run even when a finished run had the same inputs")
    q.add_argument("--no-start", action="store_true", help="queue only; do not start a runner")
    q.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="RUN",
        help="sft/grpo: resume from the last checkpoint of RUN (checked now, and again when it starts); "
        "with --force, also on changed data",
    )
    add_config(q)
    q.add_argument("--workspace", help="workspace directory (default: launch.workspace from the config)")
    for name, text in (
        ("rm", "remove jobs that are not running"),
        ("retry", "queue failed/cancelled/invalid jobs again (all of them without ids)"),
    ):
        q = qsub.add_parser(name, help=text)
        q.add_argument("jobs", nargs="*" if name == "retry" else "+", metavar="JOB")
        add_workspace(q)
    q = qsub.add_parser("pause", help="start no new job (running ones go on)")
    add_workspace(q)
    q = qsub.add_parser("resume", help="unpause, settle jobs whose runner died (e.g. a reboot), start a runner")
    add_workspace(q)
    q = qsub.add_parser("run", help="drain the queue in the foreground (what the detached runner does)")
    add_workspace(q)

    p = sub.add_parser("sweep", help="queue a grid of runs (`--grid grpo.beta=0.0,0.04`), or `sweep show ID`")
    p.add_argument("show", nargs="*", metavar="show ID", help="`show SWEEP`: print the comparison table")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="SECTION.KEY=V1,V2",
        help="values of one key (repeatable); added to the config's [sweep] table",
    )
    p.add_argument("--stages", help="stages each point runs (default: [sweep] stages, else sft,grpo,evaluate)")
    p.add_argument("--dry-run", action="store_true", help="print the planned runs and their commands; queue nothing")
    p.add_argument("--force", action="store_true", help="rerun stages even when their inputs did not change")
    p.add_argument("--no-judge", dest="no_judge", action="store_true", help="no LLM judge in any point")
    p.add_argument("--no-start", action="store_true", help="queue only; do not start a runner")
    add_config(p)
    p.add_argument("--workspace", help="workspace directory (default: launch.workspace from the config)")


def cmd_queue(ns: argparse.Namespace, argv: list[str]) -> int:
    """Run a `queue` or `sweep` command; errors are printed by the caller's handler."""
    from ftmodel.queue import QueueError
    from ftmodel.sweep import SweepError

    try:
        if ns.command == "sweep":
            return _sweep(ns)
        return _queue(ns)
    except (QueueError, SweepError) as e:
        print(t("error: {message}", message=e), file=sys.stderr)
        return 2


def _print_jobs(ws: Path) -> None:
    from ftmodel.queue import read_queue, runner_running
    from ftmodel.textio import format_table

    data = read_queue(ws)
    rows = [
        [
            j["id"],
            j["stage"] + (f" {j['args'].get('stages')}" if j["args"].get("stages") else ""),
            j["state"] + (" (reused)" if j.get("reused") else ""),
            j.get("label") or "",
            j.get("sweep") or "",
            j.get("run_id") or "",
            j.get("error") or "",
        ]
        for j in data["jobs"]
    ]
    columns = [t("job"), t("what"), t("state"), t("point"), t("sweep"), t("run"), t("note")]
    print(format_table(columns, rows) if rows else t("queue is empty"))
    print(
        (t("paused; ") if data.get("paused") else "")
        + (t("a runner is draining it") if runner_running(ws) else t("no runner (`ftmodel queue resume` starts one)"))
    )


def _start_runner(ws: Path) -> None:
    from ftmodel.queue import start_runner

    pid = start_runner(ws)
    print(
        t("runner started (pid {pid}); log: {log}", pid=pid, log=ws / "queue" / "runner.log")
        if pid
        else t("a runner is already draining it")
    )


def _queue(ns) -> int:
    from ftmodel import queue

    cmd = ns.queue_command
    if cmd == "add":
        from ftmodel.profiles import resolve_config

        cfg = load_config(ns)  # validates before anything is queued
        ws = Path(ns.workspace or cfg.launch.workspace)
        path = resolve_config(ns.config).path
        args = {"stages": ns.stages} if ns.stages else {}
        if ns.resume:  # as `ftmodel sft --resume RUN [--force]`: --force also accepts changed data
            args.update(resume=ns.resume, **({"force": True} if ns.force else {}))
        [job] = queue.add_jobs(
            ws,
            [
                queue.JobSpec(
                    ns.stage,
                    Path(path).read_text(encoding="utf-8"),
                    ns.overrides,
                    args,
                    force=ns.force,
                    label=" ".join(ns.overrides),
                )
            ],
        )
        print(f"queued {job['id']}: {ns.stage}")
        if not ns.no_start:
            _start_runner(ws)
        return 0
    ws = workspace_of(ns)
    if cmd == "ls":
        queue.reconcile(ws)
        _print_jobs(ws)
    elif cmd == "rm":
        for job_id in ns.jobs:
            print(f"removed {queue.remove_job(ws, job_id)['id']}")
    elif cmd == "retry":
        jobs = queue.retry_jobs(ws, ns.jobs)
        print(f"queued again: {', '.join(j['id'] for j in jobs) or 'nothing to retry'}")
        if jobs:
            _start_runner(ws)
    elif cmd == "pause":
        queue.set_paused(ws, True)
        print(t("paused: no new job starts; running jobs go on (`ftmodel queue resume` continues)"))
    elif cmd == "resume":
        queue.set_paused(ws, False)
        for note in queue.reconcile(ws):
            print(note)
        _start_runner(ws)
    elif cmd == "run":
        return queue.run_queue(ws, report=lambda m: print(f"{time.strftime('%H:%M:%S')} {m}", flush=True))
    return 0


def _sweep(ns) -> int:
    from ftmodel import config as config_mod
    from ftmodel import sweep
    from ftmodel.profiles import resolve_config

    if ns.show:
        if ns.show[0] != "show" or len(ns.show) != 2:
            print("error: usage: ftmodel sweep show SWEEP (or ftmodel sweep --grid …)", file=sys.stderr)
            return 2
        ws = workspace_of(ns)
        csv_path, md_path, text = sweep.write_tables(ws, ns.show[1])
        print(text)
        print(f"\n*: best answer_accuracy; written to {csv_path} and {md_path}")
        return 0
    cfg = load_config(ns)
    ws = Path(ns.workspace or cfg.launch.workspace)
    path = resolve_config(ns.config).path
    stages = [s.strip() for s in ns.stages.split(",") if s.strip()] if ns.stages else None
    spec = config_mod.load_sweep(path, ns.grid, stages)
    points = sweep.plan(path, spec.grid, spec.stages, base_overrides=ns.overrides)
    print(f"{len(points)} run(s), stages {','.join(spec.stages)}:")
    for i, p in enumerate(points, 1):
        print(f"  {i}. {', '.join(f'{k}={v}' for k, v in p.values.items())}")
        print(f"     {' '.join(p.command)}")
    if ns.dry_run:
        print(t("dry run: nothing queued"))
        return 0
    sweep_id, jobs = sweep.queue_sweep(ws, path, points, spec.stages, force=ns.force, no_judge=ns.no_judge)
    print(
        t(
            "sweep {sweep}: queued {n} job(s); `ftmodel sweep show {sweep}` prints the table",
            sweep=sweep_id,
            n=len(jobs),
        )
    )
    if not ns.no_start:
        _start_runner(ws)
    return 0
