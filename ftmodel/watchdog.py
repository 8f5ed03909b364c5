"""A stage's watchdog, and the supervisor of alert commands.

`python -m ftmodel.watchdog watch RUN_DIR PID PROC_START` is started by the worker (rank 0) with
every stage but the pipeline driver, the same way for local and Slurm runs. A frozen (SIGSTOP) or
hung process cannot see its own stall, so this tiny process looks at the run from outside: it runs
`sentinel.check_stall` every few seconds, records a stall once (a line goes to stage.log too), and
with `stall` in `[alerts] stop_on` stops the run as `ftmodel stop` does. It lives in its own session
(a signal to the stage's process group does not reach it) and exits when the process it watches is
gone or the run has ended; the worker also ends it on its way out.

`python -m ftmodel.watchdog command TIMEOUT -- ARGV…` runs one alert command in its own session and
kills it after TIMEOUT seconds (`sentinel.alerts.run_command` starts it, detached).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ftmodel.i18n import t
from ftmodel.rundir import Run, process_alive, process_start_time
from ftmodel.words import PIPELINE

LIVENESS_POLL_S = 1.0  # how often the watchdog looks whether its stage is still there


def start_watchdog(run: Run, cfg) -> subprocess.Popen | None:
    """Start the watchdog of the stage running in this process (None: alerts off, the pipeline
    driver, or it could not start; the CLI, the console and the queue runner still check stalls)."""
    if not cfg.alerts.enabled or run.read_state().get("stage") == PIPELINE:
        return None
    me = os.getpid()
    argv = [sys.executable, "-m", "ftmodel.watchdog", "watch", str(run.path), str(me), str(process_start_time(me))]
    try:
        with open(run.log_path, "ab") as log:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
    except OSError as e:
        print(t("warning: the stall watchdog could not start: {reason}", reason=e), flush=True)
        return None


def stop_watchdog(proc: subprocess.Popen | None) -> None:
    """End a watchdog started by `start_watchdog` (bounded: it is killed if it does not go at once)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} [sentinel] {message}", flush=True)


def watch(run_dir: str | Path, pid: int, proc_start: int | None) -> int:
    """Check the run for a stall until its process `pid` is gone or the run has ended."""
    from ftmodel.sentinel import check_stall, settings_for, stops_on

    run = Run(Path(run_dir))
    settings, _ = settings_for(run)
    if not settings.enabled:
        return 0
    # A tenth of the shortest window, between 0.5 s and 15 s: a stall is seen well within its window.
    every = min(15.0, max(0.5, min(settings.stall_floor_s, settings.stall_startup_s) / 10))
    next_check, acted = 0.0, set()
    while process_alive(pid, proc_start):
        if run.read_state().get("state") not in ("queued", "running"):
            return 0
        if time.monotonic() >= next_check:
            next_check = time.monotonic() + every
            try:
                alert = check_stall(run, status="running", settings=settings, source="watchdog", log=_say)
            except OSError as e:  # a full disk: say so where we can, and keep watching
                _say(t("warning: could not check or record a stall: {reason}", reason=e))
                alert = None
            if alert is not None and alert.key not in acted and stops_on(settings, "stall"):
                acted.add(alert.key)
                _stop_stalled(run, alert)
        time.sleep(min(LIVENESS_POLL_S, every))
    return 0


def _stop_stalled(run: Run, alert) -> None:
    """Stop a stalled run as `ftmodel stop` does (a hung process cannot save: it is escalated to
    SIGTERM, then SIGKILL, after bounded waits) and record the alert as the reason."""
    from ftmodel.launcher import LaunchError, stop

    reason = f"stopped by the sentinel (stall): {alert.message}"
    _say(f"{reason}; stopping the run ([alerts] stop_on)")
    try:
        stop(run, int_wait=30.0, term_wait=15.0, report=_say)
    except (LaunchError, LookupError, OSError) as e:
        _say(t("warning: could not stop the stalled run: {reason}", reason=e))
        return
    if run.read_state().get("state") in ("cancelled", "failed"):
        run.update_state(error=reason)


def supervise(timeout_s: float, argv: list[str]) -> int:
    """Run one alert command in its own session; kill it (its whole group) after `timeout_s` seconds."""
    rule, run_id = os.environ.get("FTMODEL_ALERT_RULE", "?"), os.environ.get("FTMODEL_ALERT_RUN", "?")
    print(f"{time.strftime('%H:%M:%S')} alert {rule} of {run_id}: {argv}", flush=True)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as e:
        print(f"the alert command could not start: {e}", flush=True)
        return 127
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, None)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        print(f"the alert command ran past {timeout_s:g} s ([alerts] command_timeout_s) and was killed", flush=True)
        return 124
    if code:
        print(f"the alert command exited with {code}", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """`python -m ftmodel.watchdog watch RUN_DIR PID PROC_START | command TIMEOUT -- ARGV…`."""
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # detached: a vanished terminal is no reason to stop
    if len(argv) == 4 and argv[0] == "watch":
        return watch(argv[1], int(argv[2]), int(argv[3]) if argv[3].isdigit() else None)
    if len(argv) >= 4 and argv[0] == "command" and argv[2] == "--":
        return supervise(float(argv[1]), argv[3:])
    print(
        "usage: python -m ftmodel.watchdog watch RUN_DIR PID PROC_START | command TIMEOUT -- ARGV...", file=sys.stderr
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
