"""GPU utilisation for the console's GPU panel: the nvidia-smi query and its parser."""

from __future__ import annotations

from dataclasses import dataclass

NVIDIA_SMI_QUERY = [
    "nvidia-smi",
    "--query-gpu=index,utilization.gpu,memory.used,memory.total",
    "--format=csv,noheader,nounits",
]


@dataclass
class GpuSample:
    """One GPU's utilisation and memory."""

    index: int
    util: float
    mem_used: float
    mem_total: float


def parse_nvidia_smi(text: str) -> list[GpuSample]:
    """Parse `nvidia-smi --query-gpu=index,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits`."""
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4:
            continue
        try:
            out.append(GpuSample(int(parts[0]), float(parts[1]), float(parts[2]), float(parts[3])))
        except ValueError:
            continue  # "[N/A]" on some boards
    return out
