"""Where a stage's worker runs: `local` (a detached process group) or `slurm` (sbatch), behind one interface.

Both run the same worker command and write the same run directory. A Slurm run records
`slurm_job_id` in state.json and no `pid` (its process lives on a compute node); its batch script
(`slurm_job.py` in the run dir, a python file passed to sbatch as an argv list, never a shell
string) runs the worker, forwards SIGINT/SIGTERM to it and writes the worker's exit code into
`slurm_exit.json`, because without accounting `sacct` cannot say it later. A job Slurm killed
(time limit, node failure) has no such file: `refresh` asks `squeue`/`scontrol` and records it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ftmodel.errors import FtmodelError
from ftmodel.i18n import t
from ftmodel.rundir import Run, atomic_write_text

EXIT_FILE = "slurm_exit.json"
SCRIPT_FILE = "slurm_job.py"
KILLED = ("TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE")
ACTIVE_SLURM = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING")


class BackendError(FtmodelError, RuntimeError):
    """The scheduler refused or failed a request (its message included)."""


def backend_of(run: Run) -> str:
    """Which backend ran this run: `slurm` when it records a Slurm job id, else `local`."""
    return "slurm" if run.read_state().get("slurm_job_id") else "local"


def _slurm(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as e:
        raise BackendError(t("{program} failed: {reason}", program=argv[0], reason=e)) from None


def sbatch_argv(run: Run, launch_cfg, script: Path) -> list[str]:
    """The sbatch command line for a run (an argv list: partition, GPUs, time limit, extra args)."""
    argv = [
        "sbatch",
        "--parsable",
        f"--job-name=ftmodel-{run.id}",
        f"--output={run.log_path}",
        "--open-mode=append",
        f"--chdir={Path.cwd()}",
        "--export=ALL",
        # A job the node lost must end (and show as killed), not restart from scratch behind our back:
        # the queue decides whether to run it again.
        "--no-requeue",
    ]
    if launch_cfg.slurm_partition:
        argv.append(f"--partition={launch_cfg.slurm_partition}")
    if launch_cfg.slurm_gpus_per_job:
        argv.append(f"--gpus={launch_cfg.slurm_gpus_per_job}")
    if launch_cfg.slurm_time_limit:
        argv.append(f"--time={launch_cfg.slurm_time_limit}")
    argv += list(launch_cfg.slurm_extra_args)
    return [*argv, str(script)]


def submit(run: Run, worker: list[str], launch_cfg, env: dict | None = None) -> str:
    """Submit the run's worker with sbatch; record the job id in state.json and return it."""
    script = run.path / SCRIPT_FILE
    atomic_write_text(
        script,
        f"#!{sys.executable}\n# ftmodel: runs this run's worker under Slurm\n"
        "import sys\nfrom ftmodel.backends import job_main\n"
        f"sys.exit(job_main({str(run.path)!r}, {worker!r}))\n",
    )
    script.chmod(0o755)
    argv = sbatch_argv(run, launch_cfg, script)
    res = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    )
    if res.returncode != 0:
        raise BackendError(
            t("sbatch refused run {run}: {reason}", run=run.id, reason=(res.stderr or res.stdout).strip())
        )
    job_id = res.stdout.strip().split(";")[0]
    run.update_state(slurm_job_id=job_id, backend="slurm", launched=time.time(), worker_argv=worker, sbatch_argv=argv)
    return job_id


def job_main(run_dir: str, worker: list[str]) -> int:
    """Inside the Slurm job: run the worker, pass stop signals on, write its exit code into the run dir."""
    run = Run(Path(run_dir))
    # Its own process group, as a local run has: a stop reaches a pipeline's stage in flight too.
    proc = subprocess.Popen(worker, stdin=subprocess.DEVNULL, start_new_session=True)

    def forward(signum, frame):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    run.update_state(slurm_node=os.uname().nodename, slurm_batch_pid=os.getpid())
    code = proc.wait()
    while code is None:  # pragma: no cover - wait() returns the code
        code = proc.wait()
    atomic_write_text(run.path / EXIT_FILE, json.dumps({"exit_code": code, "ended": time.time()}) + "\n")
    return code if code >= 0 else 128 - code


def slurm_state(job_id: str) -> tuple[str | None, str]:
    """(Slurm's JobState, reason/exit) of a job: squeue first, then scontrol; (None, …) when forgotten."""
    res = _slurm(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T|%r"])
    line = res.stdout.strip().splitlines()[0] if res.returncode == 0 and res.stdout.strip() else ""
    if line:
        state, _, reason = line.partition("|")
        return state, reason
    res = _slurm(["scontrol", "show", "job", job_id])
    if res.returncode != 0:
        return None, (res.stderr or res.stdout).strip()
    fields = dict(tok.split("=", 1) for tok in res.stdout.split() if "=" in tok)
    return fields.get("JobState"), f"reason {fields.get('Reason', '?')}, exit {fields.get('ExitCode', '?')}"


def refresh(run: Run) -> str:
    """A Slurm run's status, recording in state.json how it ended when the job is gone (killed, time limit)."""
    st = run.read_state()
    recorded = st.get("state", "unknown")
    # Slurm ends a job it kills (time limit, node failure) with SIGTERM first, which the worker records as
    # "cancelled": unless someone asked for a stop, ask Slurm once what really happened.
    killed_unasked = recorded == "cancelled" and not st.get("stop_request") and "slurm_state" not in st
    if recorded == "cancelled" and not st.get("stop_request") and st.get("slurm_state") in KILLED:
        # the worker recorded its SIGTERM after we had recorded why Slurm sent it: keep the reason
        run.update_state(state="failed", error=st.get("slurm_error") or st.get("error"))
        return "failed"
    if recorded not in ("queued", "running") and not killed_unasked:
        return recorded
    job_id = str(st.get("slurm_job_id"))
    try:
        state, reason = slurm_state(job_id)
    except BackendError:
        return recorded  # the scheduler is unreachable: say what the run dir says
    if state in ACTIVE_SLURM:
        return recorded
    st = run.read_state()  # the worker may have recorded its end meanwhile
    if killed_unasked and state not in KILLED:
        run.update_state(slurm_state=state)
        return recorded
    if st.get("state") not in ("queued", "running") and not killed_unasked:
        return st.get("state", "unknown")
    exit_file = run.path / EXIT_FILE
    code = st.get("exit_code")
    if exit_file.exists():
        try:
            code = json.loads(exit_file.read_text()).get("exit_code")
        except ValueError:
            pass
    tail = " | ".join(run.log_tail(3))
    what = {
        "TIMEOUT": "killed by Slurm: time limit reached",
        "NODE_FAIL": "killed by Slurm: node failure",
        "CANCELLED": "cancelled in Slurm",
        "PREEMPTED": "preempted by Slurm",
        "OUT_OF_MEMORY": "killed by Slurm: out of memory",
        "FAILED": "failed in Slurm",
    }.get(state or "", f"Slurm job {job_id} ended ({state or 'forgotten'})")
    status = "cancelled" if state == "CANCELLED" else "failed"
    error = f"{what} ({reason}); job {job_id}; log: {tail}" if tail else f"{what} ({reason})"
    run.update_state(state=status, ended=time.time(), exit_code=code, error=error, slurm_state=state, slurm_error=error)
    return status


def stop(run: Run, *, int_wait: float = 60.0, term_wait: float = 15.0, now: bool = False) -> str:
    """Stop a Slurm run: SIGINT to the batch step (the trainer saves), then cancel the job after a bounded wait."""
    job_id = str(run.read_state().get("slurm_job_id"))
    if refresh(run) not in ("queued", "running"):
        return run.read_state().get("state", "unknown")
    run.update_state(
        stop_request={"by": f"ftmodel (pid {os.getpid()})", "at": time.time(), "now": now, "slurm_job_id": job_id}
    )
    if not now:
        _slurm(["scancel", "--signal=INT", "--batch", job_id])
        deadline = time.monotonic() + int_wait
        while time.monotonic() < deadline and refresh(run) in ("queued", "running"):
            state, _ = slurm_state(job_id)
            if state == "PENDING":
                break  # nothing runs yet: nothing to save
            time.sleep(0.5)
    if refresh(run) in ("queued", "running"):
        _slurm(["scancel", job_id])
        deadline = time.monotonic() + term_wait
        while time.monotonic() < deadline and refresh(run) in ("queued", "running"):
            time.sleep(0.5)
    # The worker records its end before the job leaves Slurm; wait (bounded) for the job too, so the
    # exit code it writes is there when we say "stopped".
    deadline = time.monotonic() + term_wait
    while time.monotonic() < deadline and slurm_state(job_id)[0] in ACTIVE_SLURM:
        time.sleep(0.5)
    return run.read_state().get("state", "unknown")
