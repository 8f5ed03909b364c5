"""Start stage runs as detached processes and stop them gracefully.

A detached stage has its own session (it survives the console, tmux and SSH), reads /dev/null and
writes stage.log. Stopping sends SIGINT to its process group (the trainer saves and exits), then
SIGTERM, then SIGKILL, each after a bounded wait.

Only one stopper drives that sequence. The first records a `stop_request` (who, when) in
state.json under a lock before signalling; a second stopper (the console and `ftmodel stop` at
once) finds it, sends nothing and waits for the run to end, taking over the sequence only if the
first stopper is gone. A second SIGINT would otherwise mean "stop now" and lose the checkpoint.

The job table (`job_modules`) is the one place that imports the stage modules and the pipeline
driver: everything else gets a job's `CONTRACT` (what it reads, consumes and writes) and its
`preflight` through it. Stage modules import only the stdlib and light ftmodel modules at import
time (their ML imports are inside `run`, which only the worker calls), so the console and the CLI
may import them here to check and plan a start. (Over 400 lines: starting a job, its table, its
Slurm handle and the stop sequence are the one place that turns a job into a process and back.)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from ftmodel.contracts import StageContract
from ftmodel.errors import FtmodelError
from ftmodel.fingerprint import plan_stage, record_reuse
from ftmodel.i18n import language, t
from ftmodel.rundir import Run, create_run, file_lock, process_alive, process_start_time
from ftmodel.words import PIPELINE


class LaunchError(FtmodelError, RuntimeError):
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
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={ln.num_processes}",
            f"--nnodes={ln.num_machines}",
            f"--node_rank={ln.machine_rank}",
            f"--master_addr={ln.main_process_ip}",
            f"--master_port={ln.main_process_port}",
            *worker,
        ]
    argv = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        str(ln.num_processes * ln.num_machines),
        "--num_machines",
        str(ln.num_machines),
        "--machine_rank",
        str(ln.machine_rank),
        "--main_process_ip",
        ln.main_process_ip,
        "--main_process_port",
        str(ln.main_process_port),
        "--mixed_precision",
        ln.mixed_precision,
    ]
    if ln.accelerate_config:
        argv += ["--config_file", ln.accelerate_config]  # DeepSpeed / FSDP: the file says how to distribute
    elif ln.num_processes * ln.num_machines > 1:
        # Without it accelerate starts ONE process when no GPU is visible; with it, one per rank (gloo on CPU).
        argv += ["--multi_gpu"]
    return [*argv, *worker]


def launch(run: Run, *, new_session: bool = True, launch_cfg=None, env: dict | None = None) -> subprocess.Popen:
    """Start the run's worker with output to stage.log and record its pid in state.json.

    With several ranks the recorded pid is the launcher's (torchrun / accelerate); the ranks share
    its process group, so stopping the run stops every rank.
    """
    argv = worker_argv(run, launch_cfg)
    # The stage speaks the language of whoever started it (the console's --lang, a config's [ui] language).
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", FTMODEL_LANG=language(), **(env or {}))
    try:
        log = open(run.log_path, "ab")
    except OSError as e:
        _record_failure(run, f"could not open {run.log_path.name}: {_reason(e)}")
        raise LaunchError(
            t(
                "could not start run {run}: cannot write {path}: {reason}",
                run=run.id,
                path=run.log_path,
                reason=_reason(e),
            )
        ) from None
    with log:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=new_session,
                close_fds=True,
                env=full_env,
            )
        except OSError as e:
            _record_failure(run, f"could not start: {e}")
            raise LaunchError(t("could not start {program}: {reason}", program=argv[0], reason=e)) from e
    pgid = proc.pid if new_session else os.getpgrp()
    try:
        run.update_state(
            pid=proc.pid,
            pgid=pgid,
            proc_start=process_start_time(proc.pid),
            launched=time.time(),
            worker_argv=argv,
            **({"cuda_visible_devices": env["CUDA_VISIBLE_DEVICES"]} if env and "CUDA_VISIBLE_DEVICES" in env else {}),
        )
    except OSError as e:
        # A run nobody can find or stop must not go on: end it while we still know its pid.
        if new_session:
            _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        raise LaunchError(
            t(
                "run {run}: cannot record its process in {path}: {reason}; the stage was stopped",
                run=run.id,
                path=run.state_path,
                reason=_reason(e),
            )
        ) from None
    return proc


def job_modules() -> dict[str, ModuleType]:
    """Every job's module by name: each stage's, and the pipeline driver. The one importer of them.

    The driver gets `launch` and `stage_contract` through its context (see worker), so it never
    imports this module and the engine's imports stay free of circles (launcher -> pipeline).
    """
    from ftmodel import pipeline
    from ftmodel.stages import ablation, distill, evaluate, export, grpo, prepare, sft
    from ftmodel.stages import filter as filter_stage

    modules = (prepare, distill, filter_stage, sft, grpo, evaluate, export, ablation, pipeline)
    return {module.CONTRACT.stage: module for module in modules}


def job_module(stage: str) -> ModuleType:
    """Return the module that runs a job: a stage's module, or the pipeline driver (KeyError if unknown)."""
    return job_modules()[stage]


def stage_contract(stage: str) -> StageContract:
    """What a job reads, consumes and writes, as its module declares it."""
    return job_module(stage).CONTRACT


def preflight(stage: str, ctx) -> None:
    """Check a job's preconditions before anything loads; the pipeline's are its first stage's too."""
    module = job_module(stage)
    module.preflight(ctx)
    if stage == PIPELINE:
        job_module(module.first_stage(ctx.args)).preflight(ctx)


def _reason(e: OSError) -> str:
    """Say in words why a file operation failed (the errno's text, not a traceback)."""
    if isinstance(e, FileExistsError) or isinstance(e, NotADirectoryError):
        return f"{e.filename or 'a path'} exists and is not a directory"
    return e.strerror or str(e)


def _record_failure(run: Run, error: str) -> None:
    """Mark a run failed, if its state can still be written."""
    try:
        run.update_state(state="failed", error=error, ended=time.time())
    except OSError:
        pass  # the disk that refused the start refuses this too; the raised error says why


def start_stage(
    stage: str,
    cfg,
    workspace: str | Path,
    args: dict,
    *,
    argv: list[str],
    group: str | None = None,
    new_session: bool = True,
    reuse: bool = False,
    env: dict | None = None,
    report: Callable[[str], None] | None = None,
):
    """Check a stage's preconditions, create its run directory and launch it; return (run, process).

    With `reuse`, a finished run with the same fingerprint (same config keys read, same input
    contents, same base model and version) is returned instead, with process None, and nothing
    starts; `report` is told which run and why. Every started run records its fingerprint and
    lineage in state.json either way. `env` adds environment variables (CUDA_VISIBLE_DEVICES).
    """
    from ftmodel.config import to_toml
    from ftmodel.context import StageContext
    from ftmodel.workspace import OutputBusy, Workspace, check_outputs_free

    ws = Workspace(Path(workspace))
    args = {**args, "workspace": str(ws.root.resolve())}  # the worker may run from another directory
    contract = stage_contract(stage)
    plan = plan_stage(contract, cfg, ws.root, args, reuse=reuse)
    found, fp, args = plan.reused, plan.fingerprint, plan.args
    if found is not None:
        record_reuse(found, by=" ".join(argv))
        if report:
            report(f"{stage}: reusing {found.id} (same inputs)")
        return found, None
    probe = StageContext(run=Run(ws.runs / "(preflight)"), cfg=cfg, ws=ws, stage=stage, args=args)
    preflight(stage, probe)
    try:
        check_outputs_free(ws.root, contract.shared_outputs)  # refused before a run exists; the worker's lock guards
    except OutputBusy as e:
        raise LaunchError(str(e)) from None
    try:
        run = create_run(workspace, stage, config_toml=to_toml(cfg), argv=argv, args=args, group=group)
        run.update_state(fingerprint=fp.as_state(), lineage=fp.lineage)
    except OSError as e:
        raise LaunchError(
            t("cannot create a run directory in {path}: {reason}", path=ws.runs, reason=_reason(e))
        ) from None
    if report and reuse and fp.digest is None and fp.applicable:  # e.g. an input could not be hashed
        report(t("{stage}: running, nothing to reuse ({why})", stage=stage, why=fp.missing))
    elif report and plan.refused:  # a run with the same inputs exists but is partial or stale: say so
        report(t("{stage}: running again: {why}", stage=stage, why=plan.why))
    if getattr(cfg.launch, "backend", "local") == "slurm":
        from ftmodel import backends

        try:
            job = backends.submit(run, worker_argv(run, cfg.launch), cfg.launch, env)
        except (backends.BackendError, OSError) as e:
            _record_failure(run, str(e))
            raise LaunchError(str(e)) from None
        if report:
            report(t("{stage}: submitted to Slurm as job {job}", stage=stage, job=job))
        return run, SlurmJob(run)
    proc = launch(run, new_session=new_session, launch_cfg=cfg.launch, env=env)
    return run, proc


class SlurmJob:
    """A Popen-like handle on a Slurm run (poll/wait through the backend), for callers that keep handles."""

    def __init__(self, run: Run):
        self.run = run
        self.returncode = None

    def poll(self):
        if run_status(self.run) in ("queued", "running"):
            return None
        self.returncode = self.run.read_state().get("exit_code")
        self.returncode = 1 if self.returncode is None else self.returncode
        return self.returncode

    def wait(self, timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("sbatch", timeout)
            time.sleep(1.0)
        return self.returncode


def run_status(run: Run) -> str:
    """A run's status through its backend: Slurm runs ask the scheduler (and record a job it killed);
    local runs check their process (`lost` when it is gone)."""
    if run.read_state().get("slurm_job_id"):
        from ftmodel import backends

        return backends.refresh(run)
    return run.status()


def _wait_gone(pid: int, start: int | None, timeout: float, *, unless: Callable[[], bool] | None = None) -> bool:
    """Poll until the process is gone or `timeout` seconds pass (or `unless()` turns true); say whether it is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid, start):
            return True
        if unless is not None and unless():
            return False
        time.sleep(0.1)
    return not process_alive(pid, start)


def signal_target(run: Run) -> tuple[int, int, int] | None:
    """Return (pid, start time, process group) of a run's live process, None if it has none running.

    Raises BrokenRun for a missing or corrupt state.json and LaunchError when the recorded process
    cannot be trusted to be the run's: a pid without its start time (the pid may have been reused),
    or a process group that is not the process's own.
    """
    state = run.check_state()
    pid, start = state.get("pid"), state.get("proc_start")
    if pid is None:
        return None
    if not isinstance(pid, int) or pid <= 1:
        raise LaunchError(
            t("run {run}: state.json records an invalid pid {pid!r}; not signalling anything", run=run.id, pid=pid)
        )
    host = state.get("host")
    if host and host != socket.gethostname():  # that pid means another process here
        raise LaunchError(
            t(
                "run {run} runs on host {host}, not here ({here}): stop it there",
                run=run.id,
                host=host,
                here=socket.gethostname(),
            )
        )
    if start is None and Path("/proc").is_dir():
        if process_start_time(pid) is None:
            return None  # nothing runs under that pid: nothing to signal
        raise LaunchError(
            t(
                "run {run}: state.json records pid {pid} without its process start time, so it cannot tell "
                "whether that pid is still the run's (it may be reused); not signalling it",
                run=run.id,
                pid=pid,
            )
        )
    if not process_alive(pid, start):
        return None
    pgid = state.get("pgid") or pid
    try:
        actual = os.getpgid(pid)
    except ProcessLookupError:
        return None
    if pgid != actual or pgid <= 1:
        raise LaunchError(
            t(
                "run {run}: recorded process group {pgid} is not that of pid {pid} ({actual}); not signalling it",
                run=run.id,
                pgid=pgid,
                pid=pid,
                actual=actual,
            )
        )
    return pid, start, pgid


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; say whether it still existed."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def _stopper() -> dict:
    """Who is stopping: this process (pid, start time, host) and what it is."""
    me = os.getpid()
    what = "the console" if "tui.app" in sys.modules else "ftmodel"
    return {
        "pid": me,
        "proc_start": process_start_time(me),
        "host": socket.gethostname(),
        "by": f"{what} (pid {me} on {socket.gethostname()})",
    }


def _request_active(request, pid: int) -> bool:
    """Whether a recorded stop request is still being carried out by a live stopper for this process."""
    return (
        isinstance(request, dict)
        and request.get("target_pid") == pid
        and request.get("host") == socket.gethostname()
        and process_alive(request.get("pid"), request.get("proc_start"))
    )


def stop(
    run: Run,
    *,
    int_wait: float = 60.0,
    term_wait: float = 15.0,
    now: bool = False,
    report: Callable[[str], None] | None = None,
) -> str:
    """Stop a run: SIGINT, then SIGTERM, then SIGKILL, each after a bounded wait; return its status.

    `now` skips the graceful SIGINT (no checkpoint). If another stopper is already stopping the run,
    nothing is sent: this call waits for the run to end (`report` is told so) and takes over the
    sequence only if that stopper goes away.
    """
    if run.read_state().get("slurm_job_id"):  # the scheduler signals it: the process is on a compute node
        from ftmodel import backends

        return backends.stop(run, int_wait=int_wait, term_wait=term_wait, now=now)
    target = signal_target(run)
    if target is None:
        return run.status()
    pid, start, pgid = target
    me = _stopper()
    with file_lock(run.path / ".stop.lock"):  # one stopper records its request and signals; the rest see it
        request = run.read_state().get("stop_request")
        leader = request if (_request_active(request, pid) and not now) else None
        if leader is None:
            request = {**me, "at": time.time(), "now": now, "target_pid": pid}
            run.update_state(stop_request=request)
            try:
                if not _signal_group(pgid, signal.SIGTERM if now else signal.SIGINT):
                    return run.status()
            except PermissionError as e:
                raise LaunchError(
                    t("cannot signal run {run} (pid {pid}): {reason}", run=run.id, pid=pid, reason=e)
                ) from e
    if leader is not None:
        if report:
            report(
                t(
                    "{run}: a stop is already in progress (asked by {by}); waiting for it to save and exit "
                    "(`ftmodel stop --now` stops it at once)",
                    run=run.id,
                    by=leader.get("by") or t("another stopper"),
                )
            )
        # Wait while the first stopper drives the sequence; if it goes away, finish its sequence.
        _wait_gone(
            pid,
            start,
            int_wait + term_wait + 10.0,
            unless=lambda: not _request_active(run.read_state().get("stop_request"), pid),
        )
        elapsed = time.time() - float(leader.get("at") or time.time())
        steps = [(None, max(0.0, int_wait - elapsed)), (signal.SIGTERM, term_wait), (signal.SIGKILL, 5.0)]
    else:
        steps = (
            [(None, term_wait), (signal.SIGKILL, 5.0)]
            if now
            else [(None, int_wait), (signal.SIGTERM, term_wait), (signal.SIGKILL, 5.0)]
        )
    for sig, wait in steps:
        if not process_alive(pid, start):
            break
        try:
            if sig is not None and not _signal_group(pgid, sig):
                break
        except PermissionError as e:
            raise LaunchError(t("cannot signal run {run} (pid {pid}): {reason}", run=run.id, pid=pid, reason=e)) from e
        if _wait_gone(pid, start, wait):
            break
    if run.read_state().get("state") in ("queued", "running") and not process_alive(pid, start):
        run.update_state(state="cancelled", ended=time.time(), error=t("killed: it did not stop when asked"))
    return run.status()
