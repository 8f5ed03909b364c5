"""Where a workspace keeps its data, models and runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    """Paths inside one workspace directory (created on demand)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def raw_train(self) -> Path:
        return self.data / "raw" / "train.jsonl"

    @property
    def raw_eval(self) -> Path:
        return self.data / "raw" / "eval.jsonl"

    @property
    def distilled(self) -> Path:
        return self.data / "distilled.jsonl"

    @property
    def sft_data(self) -> Path:
        return self.data / "sft.jsonl"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def wandb_home(self) -> Path:
        """wandb's staging, cache and settings live here so nothing escapes the workspace."""
        return self.root / ".wandb"
