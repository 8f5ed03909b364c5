"""GPUs and their free memory, from `nvidia-smi`'s query output: where the queue places a job."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass

MIN_FREE_FRACTION = 0.5  # a GPU takes a job only with at least this share of its memory free
NVIDIA_SMI = ["nvidia-smi", "--query-gpu=index,memory.free,memory.total", "--format=csv,noheader,nounits"]


@dataclass
class Gpu:
    """One GPU as nvidia-smi reports it: its index and memory in MiB."""

    index: str
    free_mib: float
    total_mib: float


def query_gpus(run: Callable = subprocess.run) -> list[Gpu]:
    """GPUs with their free and total memory from nvidia-smi; [] without nvidia-smi or a GPU."""
    try:
        out = run(NVIDIA_SMI, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    gpus = []
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        try:
            gpus.append(Gpu(parts[0], float(parts[1]), float(parts[2])))
        except (IndexError, ValueError):
            continue
    return gpus


def pick_gpu(gpus: list[Gpu], busy: set[str]) -> Gpu | None:
    """The GPU with the most free memory that none of our jobs uses and that is at least half free."""
    free = [
        g for g in gpus if g.index not in busy and g.total_mib > 0 and g.free_mib / g.total_mib >= MIN_FREE_FRACTION
    ]
    return max(free, key=lambda g: g.free_mib) if free else None
