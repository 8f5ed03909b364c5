"""What a job declares about itself: the config keys it reads, what it consumes and what it writes.

Each stage module (and the pipeline driver) exports one `CONTRACT`, next to its `preflight` and
`run`. The launcher's job table is the one place that imports those modules; fingerprints
(`ftmodel/fingerprint.py`), the workspace's write locks (`ftmodel/workspace.py`) and the queue get a
contract from the launcher (or from whoever the launcher handed it to) and read it, so no table of
per-stage facts lives anywhere else. Workspace paths are the names `ftmodel/workspace.py` spells.
Stdlib only: the CLI fingerprints a stage before any model loads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What a stage with the judge switched on reads of [judge] (its answers change with these).
JUDGE_READS = ("judge.backend", "judge.base_url", "judge.model", "judge.temperature", "judge.max_tokens")


@dataclass(frozen=True)
class RunInput:
    """A finished run whose adapter a stage starts from.

    Named by the first of `arg_keys` set in the stage's args (a run id or an adapter directory);
    when none is, the newest finished run of `stage` is pinned into `pin_key`, so the worker loads
    exactly the run that was fingerprinted.
    """

    stage: str
    arg_keys: tuple[str, ...]
    pin_key: str

    def ref(self, args: dict) -> str | None:
        """The run id or adapter directory the args name, or None."""
        return next((args[k] for k in self.arg_keys if args.get(k)), None)


@dataclass(frozen=True)
class StageContract:
    """What one job reads, consumes and writes (what determines its output, and what it must not share).

    - `reads`: config sections (`"lora"`) or keys (`"data.system_prompt"`) its output depends on.
    - `reusable`: False where a finished run is never reused (export, ablation, the pipeline).
    - `judge_switch`: the config key that turns its LLM judge on; then `JUDGE_READS` count too
      (unless `--no-judge`).
    - `inputs`: workspace files (relative paths) whose content is an input.
    - `source_inputs(cfg)`: files named by the config that are inputs (`{"data.source": path}`).
    - `consumes(args)`: the run whose adapter it starts from (a `RunInput`), or None.
    - `shared_outputs`: workspace files or folders it rewrites: one writer at a time, and their
      hashes are recorded so a reused run still matches the workspace.
    - `run_outputs`: files in its own run directory that must still exist for it to be reused.
    """

    stage: str
    reads: tuple[str, ...] = ()
    reusable: bool = True
    judge_switch: str | None = None
    inputs: tuple[str, ...] = ()
    source_inputs: Callable[[Any], dict[str, Path]] | None = None
    consumes: Callable[[dict], RunInput | None] | None = None
    shared_outputs: tuple[str, ...] = ()
    run_outputs: tuple[str, ...] = ()

    def config_reads(self, cfg, args: dict) -> tuple[str, ...]:
        """The config sections and keys this run's output depends on (the judge's when it is on)."""
        if self.judge_switch and not args.get("no_judge") and config_value(cfg, self.judge_switch):
            return (*self.reads, *JUDGE_READS)
        return self.reads

    def consumed(self, args: dict) -> RunInput | None:
        """The run whose adapter this run starts from, or None."""
        return self.consumes(args) if self.consumes else None


def config_value(cfg, key: str):
    """The value of `section.key` in a loaded config."""
    section, _, name = key.partition(".")
    return getattr(getattr(cfg, section), name)
