"""A real single-node Slurm cluster on loopback for tests: munged, slurmctld and slurmd started by hand
(no systemd) with every state, spool, socket and log file in a temp dir, stopped by PID at teardown.

Facts it relies on are in ../shared/STACK.md (Slurm). Without the packages the tests that use it are
skipped with the reason, except under CI=true, where a missing Slurm is a failure (`.ci/slurm`
installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if not shutil.which(b) and not Path("/usr/sbin", b).exists()]


def require_slurm() -> None:
    """Skip (or, under CI=true, fail) when Slurm and munge are not installed."""
    missing = missing_binaries()
    if not missing:
        return
    reason = f"Slurm is not installed (missing {', '.join(missing)}; `.ci/slurm` installs slurm-wlm and munge)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    env: dict
    pids: dict

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=60)
        if check and res.returncode != 0:
            raise AssertionError(f"{argv}: {res.stderr or res.stdout}")
        return res


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def start_cluster(root: Path) -> SlurmCluster:
    """Start munged, slurmctld and slurmd under `root`; return once the node is idle."""
    root.mkdir(parents=True, exist_ok=True)
    for d in ("state", "spool", "log", "munge"):
        (root / d).mkdir(exist_ok=True)
    sock = root / "munge" / "munge.socket"
    pids: dict[str, int] = {}
    # munged as root needs --force; its socket lives here, so nothing touches /run/munge
    subprocess.run(
        [
            _bin("munged"),
            "--force",
            f"--socket={sock}",
            f"--pid-file={root}/munge/munged.pid",
            f"--log-file={root}/log/munged.log",
            f"--seed-file={root}/munge/seed",
        ],
        check=True,
        timeout=30,
    )
    pids["munged"] = int(
        _wait(
            lambda: (root / "munge/munged.pid").exists() and (root / "munge/munged.pid").read_text().strip(),
            10,
            "munged",
        )
    )
    cpus = max(os.cpu_count() or 1, 4)
    conf = root / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=ftmodeltest",
                "SlurmctldHost=localhost(127.0.0.1)",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                f"AuthInfo=socket={sock}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "JobAcctGatherType=jobacct_gather/none",
                "ReturnToService=2",
                "MailProg=/bin/true",
                "SlurmdParameters=config_overrides",
                "MinJobAge=600",
                "KillWait=5",
                f"StateSaveLocation={root}/state",
                f"SlurmdSpoolDir={root}/spool",
                f"SlurmctldPidFile={root}/slurmctld.pid",
                f"SlurmdPidFile={root}/slurmd.pid",
                f"SlurmctldLogFile={root}/log/slurmctld.log",
                f"SlurmdLogFile={root}/log/slurmd.log",
                f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN",
                "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    subprocess.run([_bin("slurmctld"), "-c", "-f", str(conf)], env=env, check=True, timeout=30)
    pids["slurmctld"] = int(
        _wait(
            lambda: (root / "slurmctld.pid").exists() and (root / "slurmctld.pid").read_text().strip(), 20, "slurmctld"
        )
    )
    subprocess.run([_bin("slurmd"), "-N", "localhost", "-f", str(conf)], env=env, check=True, timeout=30)
    pids["slurmd"] = int(
        _wait(lambda: (root / "slurmd.pid").exists() and (root / "slurmd.pid").read_text().strip(), 20, "slurmd")
    )
    cluster = SlurmCluster(root, conf, env, pids)
    _wait(lambda: cluster.run("sinfo", "-h", "-o", "%t", check=False).stdout.strip() == "idle", 60, "an idle node")
    return cluster


def stop_cluster(cluster: SlurmCluster) -> None:
    """Stop the daemons by PID (slurmd, slurmctld, munged), each with a bounded wait."""
    for name in ("slurmd", "slurmctld", "munged"):
        pid = cluster.pids.get(name)
        if not pid:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running single-node Slurm; clients need its `env` (SLURM_CONF)."""
    require_slurm()
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster
    finally:
        stop_cluster(cluster)
