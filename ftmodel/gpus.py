"""GPUs as `nvidia-smi` reports them, and which of them a job may be placed on.

The one place that asks nvidia-smi and reads its answer: the queue places jobs with it and the
console's GPU panel can show it (one type, `Gpu`, for both). Stdlib only and cheap to import.

Placement is by UUID with `CUDA_DEVICE_ORDER=PCI_BUS_ID`: nvidia-smi numbers GPUs in PCI bus order,
CUDA (by default) fastest first, so on a box with mixed GPUs `CUDA_VISIBLE_DEVICES=<nvidia-smi
index>` can open another GPU than the one chosen; a UUID names one GPU whatever the order. And a job
is only placed within the devices its runner was given: a `CUDA_VISIBLE_DEVICES` that Slurm or the
user set is a boundary, never overridden.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass

MIN_FREE_FRACTION = 0.5  # a GPU takes a job only with at least this share of its memory free
# The name goes last: it is the one field that may hold a comma.
QUERY_FIELDS = (
    "index",
    "uuid",
    "pci.bus_id",
    "utilization.gpu",
    "memory.used",
    "memory.free",
    "memory.total",
    "name",
)
NVIDIA_SMI = ["nvidia-smi", f"--query-gpu={','.join(QUERY_FIELDS)}", "--format=csv,noheader,nounits"]


@dataclass(frozen=True)
class Gpu:
    """One GPU as nvidia-smi reports it; a value it cannot tell (`[N/A]`, `[Not Supported]`) is None."""

    index: int  # nvidia-smi's index: PCI bus order
    uuid: str  # GPU-xxxxxxxx-…: what placement puts in CUDA_VISIBLE_DEVICES
    pci_bus_id: str = ""
    util_pct: float | None = None  # utilization.gpu, percent
    used_mib: float | None = None
    free_mib: float | None = None
    total_mib: float | None = None
    name: str = ""

    @property
    def label(self) -> str:
        """How people name it: `GPU 1`."""
        return f"GPU {self.index}"


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]" on some boards


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Read the output of `NVIDIA_SMI` (one line per GPU, `QUERY_FIELDS` in order); lines that are
    not a GPU (a warning, a cut line, an index that is not a number) are left out."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",", len(QUERY_FIELDS) - 1)]
        if len(parts) < len(QUERY_FIELDS) or not parts[0].isdigit():
            continue
        index, uuid, bus, util, used, free, total, name = parts
        gpus.append(Gpu(int(index), uuid, bus, _number(util), _number(used), _number(free), _number(total), name))
    return gpus


def query_gpus(run: Callable = subprocess.run, timeout: float = 20) -> list[Gpu]:
    """This machine's GPUs from nvidia-smi; [] without nvidia-smi, a GPU or an answer in time."""
    try:
        out = run(NVIDIA_SMI, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return parse_nvidia_smi(out.stdout)


_INDEX = re.compile(r"^\d+$")


def given_gpus(gpus: list[Gpu], env: Mapping[str, str]) -> list[Gpu] | None:
    """The GPUs a job started with `env` may use: all of them when `CUDA_VISIBLE_DEVICES` is unset,
    none when it is empty, else those it names, read as CUDA reads it (indexes, `GPU-` UUIDs or a
    unique prefix of one; the list ends at the first entry that names no GPU).

    None when it names devices that cannot be matched to nvidia-smi's GPUs with certainty — MIG
    instances, or indexes on a box with mixed GPUs without `CUDA_DEVICE_ORDER=PCI_BUS_ID` (CUDA
    then numbers them fastest first): the job is not placed, it keeps the devices it was given."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return list(gpus)
    entries = [e.strip() for e in visible.split(",") if e.strip()]
    pci_order = env.get("CUDA_DEVICE_ORDER", "").upper() == "PCI_BUS_ID" or len({g.name for g in gpus}) <= 1
    chosen: list[Gpu] = []
    for entry in entries:
        if entry.upper().startswith("MIG-"):
            return None
        if _INDEX.match(entry):
            if not pci_order:
                return None
            found = [g for g in gpus if g.index == int(entry)]
        else:
            found = [g for g in gpus if g.uuid.lower().startswith(entry.lower())] if entry else []
        if len(found) != 1:
            break  # CUDA stops at the first entry that names no (single) device
        if found[0] not in chosen:
            chosen.append(found[0])
    return chosen


def pick_gpu(gpus: list[Gpu], busy: set[str]) -> Gpu | None:
    """The GPU with the most free memory that none of our jobs uses (`busy`: their indexes as text)
    and that is at least half free."""
    free = [
        g
        for g in gpus
        if str(g.index) not in busy
        and g.total_mib
        and g.free_mib is not None
        and g.free_mib / g.total_mib >= MIN_FREE_FRACTION
    ]
    return max(free, key=lambda g: g.free_mib or 0.0) if free else None


def job_environment(gpu: Gpu) -> dict[str, str]:
    """The environment that puts a job on `gpu` and only there, whatever CUDA's device order."""
    return {"CUDA_VISIBLE_DEVICES": gpu.uuid or str(gpu.index), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
