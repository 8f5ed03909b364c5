"""Start stage runs as detached processes and stop them gracefully.

A detached stage has its own session (it survives the console, tmux and SSH), reads /dev/null and
writes stage.log. Stopping sends SIGINT to its process group (the trainer saves and exits), then
SIGTERM, then SIGKILL, each after a bounded wait.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from pathlib import Path

from ftmodel.rundir import Run, create_run, process_alive, process_start_time


class LaunchError(RuntimeError):
    """The stage could not be started."""


# Only the training stages scale out; the others read and write workspace files as one process.
DISTRIBUTED_STAGES = ("sft", "grpo")


def worker_argv(run: Run, launch_cfg=None) -> list[str]:
    """Build the argv that runs a stage's worker for this run: plain python, accelerate or torchrun."""
    worker = ["-m", "ftmodel.worker", str(run.path)]
    stage = run.read_state().get("stage")
    if launch_cfg is None or launch_cfg.launcher == "python" or stage not in DISTRIBUTED_STAGES:
        return [sys.executable, *worker]
    ln = launch_cfg
    if ln.launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ln.num_processes}",
                f"--nnodes={ln.num_machines}", f"--node_rank={ln.machine_rank}", f"--master_addr={ln.main_process_ip}",
                f"--master_port={ln.main_process_port}", *worker]
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes",
            str(ln.num_processes * ln.num_machines), "--num_machines", str(ln.num_machines), "--machine_rank",
            str(ln.machine_rank), "--main_process_ip", ln.main_process_ip, "--main_process_port",
            str(ln.main_process_port), "--mixed_precision", ln.mixed_precision]
    if ln.accelerate_config:
        argv += ["--config_file", ln.accelerate_config]  # DeepSpeed / FSDP: the file says how to distribute
    elif ln.num_processes * ln.num_machines > 1:
        # Without it accelerate starts ONE process when no GPU is visible; with it, one per rank (gloo on CPU).
        argv += ["--multi_gpu"]
    return [*argv, *worker]


def launch(run: Run, *, new_session: bool = True, launch_cfg=None) -> subprocess.Popen:
    """Start the run's worker with output to stage.log and record its pid in state.json.

    With several ranks the recorded pid is the launcher's (torchrun / accelerate); the ranks share
    its process group, so stopping the run stops every rank.
    """
    argv = worker_argv(run, launch_cfg)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(run.log_path, "ab") as log:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=new_session, close_fds=True, env=env)
        except OSError as e:
            run.update_state(state="failed", error=f"could not start: {e}", ended=time.time())
            raise LaunchError(f"could not start {argv[0]}: {e}") from e
    pgid = proc.pid if new_session else os.getpgrp()
    run.update_state(pid=proc.pid, pgid=pgid, proc_start=process_start_time(proc.pid), launched=time.time(),
                     worker_argv=argv)
    return proc


def job_module(stage: str):
    """Return the module that runs a job: a stage's module, or the pipeline driver.

    The driver gets `launch` through its context (see worker), so it never imports this module and
    the engine's imports stay free of circles (launcher -> pipeline -> stages).
    """
    from ftmodel import pipeline
    from ftmodel.stages import PIPELINE, stage_module

    return pipeline if stage == PIPELINE else stage_module(stage)


def start_stage(stage: str, cfg, workspace: str | Path, args: dict, *, argv: list[str],
              group: str | None = None, new_session: bool = True):
    """Check a stage's preconditions, create its run directory and launch it; return (run, process)."""
    from ftmodel.config import to_toml
    from ftmodel.context import StageContext
    from ftmodel.workspace import Workspace

    ws = Workspace(Path(workspace))
    args = {**args, "workspace": str(ws.root.resolve())}  # the worker may run from another directory
    module = job_module(stage)
    probe = StageContext(run=Run(ws.runs / "(preflight)"), cfg=cfg, ws=ws, stage=stage, args=args)
    module.preflight(probe)
    run = create_run(workspace, stage, config_toml=to_toml(cfg), argv=argv, args=args, group=group)
    proc = launch(run, new_session=new_session, launch_cfg=cfg.launch)
    return run, proc


def _wait_gone(pid: int, start: int | None, timeout: float) -> bool:
    """Poll until the process is gone or `timeout` seconds pass; say whether it is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid, start):
            return True
        time.sleep(0.1)
    return not process_alive(pid, start)


def stop(run: Run, *, int_wait: float = 60.0, term_wait: float = 15.0) -> str:
    """Stop a run: SIGINT, then SIGTERM, then SIGKILL, each after a bounded wait; return its status."""
    state = run.read_state()
    pid, start = state.get("pid"), state.get("proc_start")
    if not process_alive(pid, start):
        return run.status()
    pgid = state.get("pgid") or pid
    for sig, wait in ((signal.SIGINT, int_wait), (signal.SIGTERM, term_wait), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        except PermissionError as e:
            raise LaunchError(f"cannot signal run {run.id} (pid {pid}): {e}") from e
        if _wait_gone(pid, start, wait):
            break
    if run.read_state().get("state") in ("queued", "running"):
        run.update_state(state="cancelled", ended=time.time(), error="killed: it did not stop when asked")
    return run.status()

