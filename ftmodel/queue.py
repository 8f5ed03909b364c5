"""A persistent job queue in the workspace, drained by one detached runner that survives the console.

`<workspace>/queue/queue.json` holds the jobs (written atomically under `queue/.lock`, the previous
version kept as `queue.json.bak`); each job's config snapshot is `queue/jobs/<id>.toml`. A runner
(`python -m ftmodel.queue WORKSPACE`, started detached) holds `queue/runner.lock` for its life, so
two runners never drain one workspace; it starts one job after another on CPU, or one job per GPU
with the most free memory (`CUDA_VISIBLE_DEVICES`), continues past failures, and exits when
nothing is left. A job becomes a run directory when it starts (its args carry `queue_job`, so a
job started by a runner that then died is found again and never started twice). A corrupt queue
file is an error naming the file; it is never overwritten. (Over 400 lines: the file format, job states,
reconciliation after a crash and the runner that acts on them belong together.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ftmodel.errors import FtmodelError
from ftmodel.gpus import Gpu, given_gpus, job_environment, pick_gpu, query_gpus  # noqa: F401 (Gpu: the queue's API)
from ftmodel.i18n import language, set_language, t
from ftmodel.rundir import Run, atomic_write_text, file_lock, find_run, list_runs, process_start_time

QUEUE_DIR = "queue"
QUEUE_FILE = "queue.json"
JOB_STATES = ("queued", "starting", "running", "done", "failed", "cancelled", "invalid")
OPEN_STATES = ("queued", "starting", "running")
MAX_LOST = 2  # a job whose process vanished (reboot) is requeued this often, then marked failed
STALL_CHECK_S = 10.0  # how often the runner checks its running jobs for a stall (ftmodel/sentinel)


class QueueError(FtmodelError):
    """The queue cannot be read or changed (corrupt file, unknown job, a job in the wrong state)."""


def queue_dir(ws: str | Path) -> Path:
    """The folder that holds a workspace's queue."""
    return Path(ws) / QUEUE_DIR


def new_job_id() -> str:
    return f"job-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _read(ws: Path) -> dict:
    path = queue_dir(ws) / QUEUE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"version": 1, "paused": False, "jobs": []}
    except (OSError, UnicodeDecodeError) as e:
        raise QueueError(
            t("cannot read the queue {path}: {reason}", path=path, reason=getattr(e, "strerror", None) or e)
        ) from None
    try:
        data = json.loads(text)
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("jobs"), list)
            or not all(isinstance(j, dict) and isinstance(j.get("id"), str) for j in data["jobs"])
        ):
            raise ValueError("not a queue object with a list of jobs")
    except ValueError as e:
        backup = path.with_name(QUEUE_FILE + ".bak")
        if backup.exists():
            raise QueueError(
                t(
                    "the queue file {path} is corrupt ({reason}); it is left as it is. The previous version is "
                    "{backup}: copy it over {path} to restore, or move the file away to start an empty queue",
                    path=path,
                    reason=e,
                    backup=backup,
                )
            ) from None
        raise QueueError(
            t(
                "the queue file {path} is corrupt ({reason}); it is left as it is. The previous version is not "
                "available; move the file away to start an empty queue",
                path=path,
                reason=e,
            )
        ) from None
    return data


def _write(ws: Path, data: dict) -> None:
    path = queue_dir(ws) / QUEUE_FILE
    if path.exists():  # the last good version, for a hand to restore if something goes wrong later
        shutil.copyfile(path, path.with_name(QUEUE_FILE + ".bak"))
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def editing(ws: str | Path) -> Iterator[dict]:
    """Lock the queue, yield its content to change in place, and write it back atomically."""
    ws = Path(ws)
    queue_dir(ws).mkdir(parents=True, exist_ok=True)
    with file_lock(queue_dir(ws) / ".lock"):
        data = _read(ws)
        yield data
        _write(ws, data)


def read_queue(ws: str | Path) -> dict:
    """The queue's content (jobs in order, the paused flag); raises QueueError when corrupt."""
    return _read(Path(ws))


def _job(data: dict, job_id: str) -> dict:
    matches = [j for j in data["jobs"] if j["id"] == job_id or j["id"].startswith(job_id)]
    if len(matches) != 1:
        raise QueueError(
            t("no queued job {job!r}", job=job_id) if not matches else t("job id {job!r} is ambiguous", job=job_id)
        )
    return matches[0]


@dataclass
class JobSpec:
    """What a job runs: a stage (or `pipeline` with `stages`), a config snapshot and overrides."""

    stage: str
    config_text: str
    overrides: list
    args: dict
    sweep: str | None = None
    point: dict | None = None
    force: bool = False
    label: str = ""


def add_jobs(ws: str | Path, specs: list[JobSpec]) -> list[dict]:
    """Append jobs to the queue (all or none); return them."""
    ws = Path(ws)
    jobs_dir = queue_dir(ws) / "jobs"
    jobs_dir.mkdir(parents=True, exist_ok=True)
    added = []
    for spec in specs:
        job_id = new_job_id()
        while (jobs_dir / f"{job_id}.toml").exists():
            job_id = new_job_id()
        atomic_write_text(jobs_dir / f"{job_id}.toml", spec.config_text)
        added.append(
            {
                "id": job_id,
                "stage": spec.stage,
                "config": f"jobs/{job_id}.toml",
                "overrides": list(spec.overrides),
                "args": dict(spec.args),
                "sweep": spec.sweep,
                "point": spec.point or {},
                "force": spec.force,
                "label": spec.label,
                "state": "queued",
                "run_id": None,
                "error": None,
                "created": time.time(),
                "attempts": 0,
            }
        )
    try:
        for job in added:
            check_resume(ws, job)
    except QueueError:
        for job in added:  # nothing queued: not even the config snapshots
            with contextlib.suppress(OSError):
                job_config_path(ws, job).unlink()
        raise
    with editing(ws) as data:
        data["jobs"].extend(added)
    return added


def check_resume(ws: str | Path, job: dict) -> None:
    """Refuse a job that resumes a run (`args.resume`) when the resume would be refused at its start,
    with the same named error (ftmodel/resume.py): a changed base model or LoRA shape, changed data
    without `force`, no checkpoint. The worker checks again when it starts (the config may change)."""
    args = job.get("args") or {}
    ref = args.get("resume")
    if not ref:
        return
    from ftmodel import config as config_mod
    from ftmodel.resume import RESUMABLE, ResumeError, resume_facts

    if job["stage"] not in RESUMABLE:
        raise QueueError(
            t("--resume: only {stages} runs resume, not {stage}", stages=", ".join(RESUMABLE), stage=job["stage"])
        )
    try:
        cfg = job_config(ws, job)
        facts = resume_facts(Path(ws), job["stage"], str(ref), cfg.to_dict())
    except (config_mod.ConfigError, ResumeError) as e:
        raise QueueError(str(e)) from None
    refusal = facts.refusal(force=bool(args.get("force")))
    if refusal:
        raise QueueError(refusal)


def remove_job(ws: str | Path, job_id: str) -> dict:
    """Remove a job that is not running (stop its run first: `ftmodel stop RUN`)."""
    with editing(ws) as data:
        job = _job(data, job_id)
        if job["state"] in ("starting", "running"):
            raise QueueError(
                t(
                    "job {job} is running (run {run}): stop it first with `ftmodel stop {run}`",
                    job=job["id"],
                    run=job.get("run_id"),
                )
            )
        data["jobs"].remove(job)
    return job


def retry_jobs(ws: str | Path, job_ids: list[str]) -> list[dict]:
    """Queue failed, cancelled or invalid jobs again (all such jobs when `job_ids` is empty)."""
    with editing(ws) as data:
        jobs = (
            [_job(data, j) for j in job_ids]
            if job_ids
            else [j for j in data["jobs"] if j["state"] in ("failed", "cancelled", "invalid")]
        )
        for job in jobs:
            if job["state"] not in ("failed", "cancelled", "invalid"):
                raise QueueError(
                    t(
                        "job {job} is {state}: only failed, cancelled or invalid jobs are retried",
                        job=job["id"],
                        state=t(job["state"]),
                    )
                )
            job.update(state="queued", error=None, run_id=None, attempts=0)
    return jobs


def move_job(ws: str | Path, job_id: str, position: int) -> None:
    """Move a job to `position` in the queue (0 is first): the console's reorder."""
    with editing(ws) as data:
        job = _job(data, job_id)
        data["jobs"].remove(job)
        data["jobs"].insert(max(0, min(position, len(data["jobs"]))), job)


def set_paused(ws: str | Path, paused: bool) -> None:
    """Pause (no new job starts; running ones go on) or unpause the queue."""
    with editing(ws) as data:
        data["paused"] = paused


def job_config_path(ws: str | Path, job: dict) -> Path:
    return queue_dir(ws) / job["config"]


def job_config(ws: str | Path, job: dict):
    """The job's validated config (snapshot + overrides); raises ConfigError naming the reason."""
    from ftmodel import config as config_mod

    return config_mod.load(job_config_path(ws, job), job.get("overrides") or [])


# --- job lifecycle ------------------------------------------------------------------------------


def _run_of_job(ws: Path, job: dict) -> Run | None:
    """The run a job started: its recorded run id, else a run whose args name the job (the runner died
    between creating it and recording it)."""
    if job.get("run_id"):
        try:
            return find_run(ws, job["run_id"])
        except LookupError:
            return None
    for run in reversed(list_runs(ws)):
        if (run.read_state().get("args") or {}).get("queue_job") == job["id"]:
            return run
    return None


def reconcile(ws: str | Path) -> list[str]:
    """Bring started jobs up to date with their runs; return what changed, in words.

    finished → done; failed/cancelled → the same; a run whose process is gone (a reboot, a killed
    node) → queued again (at most MAX_LOST times, then failed): the job never finished, so running
    it again is what the user expects; its finished stages are reused, not redone.
    """
    from ftmodel.launcher import run_status

    ws = Path(ws)
    notes = []
    with editing(ws) as data:
        for job in data["jobs"]:
            if job["state"] not in ("starting", "running"):
                continue
            if job["state"] == "starting" and runner_running(ws) and job.get("runner") != os.getpid():
                continue  # a live runner is starting it right now
            run = _run_of_job(ws, job)
            if run is None:
                if job["state"] == "starting":
                    job.update(state="queued", runner=None)
                    notes.append(f"{job['id']}: its runner stopped before starting it; queued again")
                else:
                    job.update(state="failed", error=f"its run {job.get('run_id')} is gone", ended=time.time())
                    notes.append(f"{job['id']}: failed (run gone)")
                continue
            status = run_status(run)
            job["run_id"] = run.id
            if status in ("queued", "running"):
                job["state"] = "running"
                continue
            if status == "finished":
                job.update(state="done", ended=job.get("ended") or time.time())
            elif status in ("failed", "cancelled", "broken"):
                st = run.read_state()
                job.update(
                    state="cancelled" if status == "cancelled" else "failed",
                    error=st.get("error") or status,
                    ended=time.time(),
                )
            else:  # lost
                job["attempts"] = int(job.get("attempts") or 0) + 1
                if job["attempts"] > MAX_LOST:
                    job.update(
                        state="failed", error=f"run {run.id} was lost {job['attempts']} times", ended=time.time()
                    )
                else:
                    job.update(
                        state="queued",
                        run_id=None,
                        runner=None,
                        error=f"run {run.id} was lost (its process is gone); queued again",
                    )
            notes.append(f"{job['id']}: {job['state']}" + (f" ({job['error']})" if job.get("error") else ""))
    return notes


def check_stalls(ws: Path, jobs: list[dict], report: Callable[[str], None]) -> None:
    """Check the runs of running jobs (a pipeline's stages too) for a stall; a new one is recorded in
    the run and named in the runner's log. A run nobody watches overnight is still caught."""
    from ftmodel.launcher import run_status
    from ftmodel.sentinel import check_stall

    for job in jobs:
        run = _run_of_job(ws, job)
        if run is None:
            continue
        say = lambda message, job_id=job["id"]: report(f"{job_id}: {message}")  # noqa: E731
        for one in [run, *(Run(run.path.parent / c) for c in run.read_state().get("children", []))]:
            try:
                check_stall(one, status=run_status(one), source="queue runner", log=say)
            except OSError as e:
                say(f"could not check run {one.id} for a stall: {e}")


def _claim(ws: Path, gpu: str | None) -> dict | None:
    """Mark the first queued job `starting` for this runner (under the queue lock); None if none."""
    with editing(ws) as data:
        if data.get("paused"):
            return None
        for job in data["jobs"]:
            if job["state"] == "queued":
                job.update(state="starting", runner=os.getpid(), gpu=gpu, error=None)
                return dict(job)
    return None


def _update_job(ws: Path, job_id: str, **changes) -> None:
    with editing(ws) as data:
        for job in data["jobs"]:
            if job["id"] == job_id:
                job.update(changes)


def start_job(ws: str | Path, job: dict, env: dict | None = None, report: Callable[[str], None] = print) -> None:
    """Start a claimed job as a run (or reuse a finished one) and record the outcome in the queue."""
    from ftmodel import config as config_mod
    from ftmodel.context import StageError
    from ftmodel.launcher import LaunchError, start_stage
    from ftmodel.workspace import OutputBusy

    ws = Path(ws)
    try:
        cfg = job_config(ws, job)
    except config_mod.ConfigError as e:
        _update_job(ws, job["id"], state="invalid", error=str(e))
        report(f"{job['id']}: invalid: {e}")
        return
    args = {**job.get("args", {}), "queue_job": job["id"]}
    if job.get("sweep"):
        args["sweep"] = job["sweep"]
    if job.get("force") and job["stage"] == "pipeline":
        args["force"] = True
    argv = ["ftmodel", "queue", "job", job["id"]]
    try:
        run, proc = start_stage(
            job["stage"],
            cfg,
            ws,
            args,
            argv=argv,
            group=job.get("sweep"),
            reuse=not job.get("force") and job["stage"] != "pipeline",
            env=env,
            report=report,
        )
    except (StageError, LaunchError, OutputBusy, OSError, LookupError) as e:
        _update_job(ws, job["id"], state="failed", error=str(e), ended=time.time())
        report(f"{job['id']}: failed to start: {e}")
        return
    if proc is None:
        _update_job(ws, job["id"], state="done", run_id=run.id, reused=True, ended=time.time())
        return
    _update_job(ws, job["id"], state="running", run_id=run.id, started=time.time())
    where = f" on GPU {job['gpu']} ({env['CUDA_VISIBLE_DEVICES']})" if env and job.get("gpu") is not None else ""
    report(f"{job['id']}: started run {run.id}{where}")


# --- the runner ---------------------------------------------------------------------------------


def _runner_lock_path(ws: Path) -> Path:
    return queue_dir(ws) / "runner.lock"


def runner_info(ws: str | Path) -> dict:
    """The runner's record (pid, start time, host, started) or {}."""
    try:
        return json.loads((queue_dir(ws) / "runner.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def runner_running(ws: str | Path) -> bool:
    """Whether a runner drains this workspace's queue now (its lock is held)."""
    path = _runner_lock_path(Path(ws))
    if not path.exists():
        return False
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def start_runner(ws: str | Path) -> int | None:
    """Start a detached runner for the workspace unless one runs; return its pid (None if one ran)."""
    ws = Path(ws).resolve()
    if runner_running(ws):
        return None
    queue_dir(ws).mkdir(parents=True, exist_ok=True)
    with open(queue_dir(ws) / "runner.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ftmodel.queue", str(ws)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1", FTMODEL_LANG=language()),  # the starter's language
        )
    return proc.pid


def writes_shared(job: dict) -> bool:
    """Whether a job runs a stage that rewrites a shared workspace file (data/raw, data/*.jsonl): such a
    job runs alone, even where GPUs or a scheduler could run several at once."""
    from ftmodel.launcher import stage_contract
    from ftmodel.rundir import STAGES

    if job["stage"] != "pipeline":
        return bool(stage_contract(job["stage"]).shared_outputs)
    stages = (job.get("args") or {}).get("stages")
    names = [s.strip() for s in stages.split(",")] if stages else list(STAGES)
    return any(stage_contract(name).shared_outputs for name in names if name in STAGES)


def _on_slurm(ws: Path, job: dict) -> bool:
    """Whether a job goes to Slurm (its config says launch.backend = "slurm"); an invalid one does not."""
    from ftmodel import config as config_mod

    try:
        return job_config(ws, job).launch.backend == "slurm"
    except config_mod.ConfigError:
        return False


def run_queue(
    ws: str | Path,
    *,
    poll: float = 1.0,
    report: Callable[[str], None] = print,
    gpus: Callable[[], list[Gpu]] = query_gpus,
) -> int:
    """Drain the queue until nothing is queued or running (or it is paused and idle); return 0.

    Holds the runner lock for its whole life: a second runner returns at once.
    """
    ws = Path(ws).resolve()
    queue_dir(ws).mkdir(parents=True, exist_ok=True)
    with open(_runner_lock_path(ws), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report("another runner drains this queue")
            return 0
        me = os.getpid()
        atomic_write_text(
            queue_dir(ws) / "runner.json",
            json.dumps(
                {"pid": me, "proc_start": process_start_time(me), "host": socket.gethostname(), "started": time.time()}
            ),
        )
        report(f"runner {me} started")
        next_stall_check = 0.0
        while True:
            for note in reconcile(ws):
                report(note)
            data = read_queue(ws)
            running = [j for j in data["jobs"] if j["state"] in ("starting", "running")]
            if time.monotonic() >= next_stall_check:
                next_stall_check = time.monotonic() + STALL_CHECK_S
                check_stalls(ws, running, report)
            queued = [j for j in data["jobs"] if j["state"] == "queued"]
            if not running and (not queued or data.get("paused")):
                report("queue " + ("paused" if queued else "empty") + "; runner exits")
                return 0
            started = False
            if queued and not data.get("paused"):
                slurm = _on_slurm(ws, queued[0])
                # Only the GPUs this runner was given (CUDA_VISIBLE_DEVICES from Slurm or the user);
                # None: devices it cannot map to nvidia-smi's, so jobs keep them, one at a time.
                devices = [] if slurm else given_gpus(gpus(), os.environ) or []
                if running and (writes_shared(queued[0]) or any(writes_shared(j) for j in running)):
                    env, slot = None, False  # data/*.jsonl have one writer, and no reader while it writes
                elif slurm:
                    env, slot = None, True  # the scheduler places it; submitting is all we do
                elif devices:
                    gpu = pick_gpu(devices, {str(j.get("gpu")) for j in running if j.get("gpu") is not None})
                    env = job_environment(gpu) if gpu else None
                    slot = gpu is not None
                else:
                    env, slot = None, not running  # CPU: one job at a time (two trainings on 2 cores crawl)
                if slot:
                    job = _claim(ws, str(gpu.index) if env else None)
                    if job:
                        start_job(ws, job, env, report)
                        started = True
            if not started:
                time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    """`python -m ftmodel.queue WORKSPACE`: the detached runner."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m ftmodel.queue WORKSPACE", file=sys.stderr)
        return 2
    import signal

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # detached: a vanished terminal is no reason to stop
    set_language()  # FTMODEL_LANG from whoever started the runner; its stages inherit it
    try:
        return run_queue(argv[0], report=lambda m: print(f"{time.strftime('%H:%M:%S')} {m}", flush=True))
    except QueueError as e:
        print(t("error: {message}", message=e), flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
