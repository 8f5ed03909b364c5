"""Where a workspace keeps its data, models and runs, and the write locks on its shared files.

Every workspace path is spelled here once: the relative names below are what stage contracts
(`ftmodel/contracts.py`) declare as inputs and shared outputs, and what `Workspace` resolves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ftmodel.errors import FtmodelError
from ftmodel.i18n import t

# Workspace files and folders, relative to the workspace root.
RAW_DIR = "data/raw"
RAW_TRAIN = f"{RAW_DIR}/train.jsonl"
RAW_EVAL = f"{RAW_DIR}/eval.jsonl"
DISTILLED = "data/distilled.jsonl"
SFT_DATA = "data/sft.jsonl"


@dataclass(frozen=True)
class Workspace:
    """Paths inside one workspace directory (created on demand)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def raw_train(self) -> Path:
        return self.root / RAW_TRAIN

    @property
    def raw_eval(self) -> Path:
        return self.root / RAW_EVAL

    @property
    def distilled(self) -> Path:
        return self.root / DISTILLED

    @property
    def sft_data(self) -> Path:
        return self.root / SFT_DATA

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


# The shared outputs a stage writes (its contract's `shared_outputs`) have one writer at a time: two
# distills appending to one file would duplicate rows.
LOCKS_DIR = ".locks"


class OutputBusy(FtmodelError, RuntimeError):
    """Another run is writing a shared workspace output this stage would write."""


def busy_message(holder: str, output: str) -> str:
    """What OutputBusy says: which run holds which output, and how to free it."""
    return t(
        "run {holder} is already writing {output}: wait for it or stop it (`ftmodel stop {holder}`)",
        holder=holder,
        output=output,
    )


def _lock_path(root: Path, output: str) -> Path:
    return root / LOCKS_DIR / (output.replace("/", "__") + ".lock")


def output_holder(root: Path, output: str) -> str | None:
    """Return the run id holding the write lock on `output` (a path relative to the workspace), or None."""
    import fcntl

    path = _lock_path(root, output)
    try:
        fh = open(path, "r+", encoding="utf-8")
    except OSError:
        return None
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return fh.read().strip() or "another run"
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return None


def check_outputs_free(root: Path, outputs: tuple[str, ...]) -> None:
    """Raise OutputBusy if a run is writing one of `outputs` (a stage's shared outputs, checked before starting)."""
    for output in outputs:
        holder = output_holder(root, output)
        if holder:
            raise OutputBusy(busy_message(holder, output))


@contextlib.contextmanager
def writing_outputs(root: Path, outputs: tuple[str, ...], run_id: str) -> Iterator[None]:
    """Hold the write locks on `outputs` (a stage's shared outputs) for the block, or raise OutputBusy naming
    the holder.

    The locks are flocks held by this process: they vanish with it, even on SIGKILL, so a crashed
    run never blocks the next one.
    """
    import fcntl

    if not outputs:
        yield
        return
    (root / LOCKS_DIR).mkdir(parents=True, exist_ok=True)
    held = []
    try:
        for output in outputs:
            fh = open(_lock_path(root, output), "a+", encoding="utf-8")
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another run"
                fh.close()
                raise OutputBusy(busy_message(holder, output)) from None
            held.append(fh)
            fh.seek(0)
            fh.truncate()
            fh.write(run_id)
            fh.flush()
        yield
    finally:
        for fh in held:
            with contextlib.suppress(OSError):
                fh.seek(0)
                fh.truncate()
            fh.close()  # closing releases the flock
