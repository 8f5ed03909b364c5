"""GRPO health hints the status block shows, from a run's metrics and its config snapshot."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tui.rundata.series import SeriesStore


def config_beta(run_path: Path) -> float | None:
    """Return grpo.beta from the run's config snapshot (None if unreadable)."""
    try:
        with open(Path(run_path) / "config.toml", "rb") as fh:
            return float(tomllib.load(fh).get("grpo", {}).get("beta"))
    except (OSError, ValueError, TypeError, tomllib.TOMLDecodeError):
        return None


def health_hints(stage: str, store: SeriesStore, beta: float | None) -> list[str]:
    """Return GRPO health warnings for a run's metrics."""
    if stage != "grpo":
        return []
    hints = []
    zero_std = store.get("frac_reward_zero_std")
    if zero_std is not None and len(zero_std):
        recent = zero_std.recent(20)
        if sum(v >= 0.8 for v in recent) > len(recent) / 2:
            accuracy = store.get("accuracy_reward")
            right = accuracy.recent(5) if accuracy is not None else []
            mean = sum(right) / len(right) if right else None
            if mean is not None and mean >= 0.9:
                hints.append("little signal left: most groups are all right (these prompts are learned)")
            elif mean is not None and mean <= 0.1:
                hints.append("no learning signal: most groups are all wrong (SFT more, or easier prompts)")
            else:
                hints.append("no learning signal: most groups have identical rewards")
    clipped = store.get("completions/clipped_ratio")
    if clipped is not None and clipped.last is not None and clipped.last[1] >= 0.3:
        hints.append("many completions clipped: raise grpo.max_completion_length")
    if "kl_divergence" not in store and "kl" not in store and beta == 0:
        hints.append("no KL: grpo.beta is 0")
    return hints
