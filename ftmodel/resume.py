"""What a `--resume` continues from, said before it starts, and whether it may start at all.

Stdlib only (json, tomllib): the CLI prints these facts at launch, the worker writes them to
`stage.log`, and the console's confirm dialog shows them, without importing torch. A checkpoint's
`trainer_state.json` gives the step, the epoch and the learning rates logged so far; the resumed
run's `config.toml` gives the schedule it was trained with. A resume restores the scheduler's state
from the checkpoint, so its peak learning rate is the checkpoint run's, whatever the new config says.

Keys that make a resume wrong are refused by name: the base model and the LoRA shape (the
checkpoint's weights cannot load into another shape, or would continue another model's training:
`--force` does not override them), and the training data (`data.source`, `data.seed`, the content of
the stage's data files), which `--force` accepts, as a deliberate continuation on new data.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ftmodel.config.schema import Config
from ftmodel.errors import FtmodelError
from ftmodel.i18n import t
from ftmodel.rundir import find_run, list_runs

# A checkpoint is saved under this hidden folder of the checkpoints dir and renamed into place when whole.
SAVING_DIR = ".saving"
CHECKPOINT_STATE = "trainer_state.json"  # transformers writes it last: a checkpoint without it is partial

# The checkpoint's weights belong to this base model and this adapter shape: never forced.
SHAPE_KEYS = (
    "model.name_or_path",
    "model.tiny_hidden_size",
    "model.tiny_layers",
    "model.tiny_pretrain_steps",
    "model.tiny_seed",
    "lora.r",
    "lora.alpha",
    "lora.target_modules",
    "lora.modules_to_save",
)
# The data position only means something on the same data: refused unless --force.
DATA_KEYS = ("data.source", "data.seed")
# The schedule each stage trains with: (its config section, the scheduler's key, the warm-up's key); GRPO
# keeps transformers' defaults (linear, no warm-up).
SCHEDULES = {"sft": ("sft", "sft.lr_scheduler", "sft.warmup_ratio"), "grpo": ("grpo", None, None)}
RESUMABLE = tuple(SCHEDULES)  # the stages whose runs save checkpoints a resume continues
# A logged learning rate matches the schedule within this fraction of the peak.
LR_TOLERANCE = 1e-6


class ResumeError(FtmodelError, ValueError):
    """No checkpoint to resume from, or one that cannot be read (the message names the run or file)."""


def _step_of(path: Path) -> int:
    tail = path.name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def last_checkpoint(run_dir: Path, log=None) -> Path | None:
    """Return the newest complete `checkpoint-N` directory of a run, or None.

    A checkpoint without trainer_state.json was cut short (a kill or a full disk during a save
    made before saves were atomic), and a folder left in `checkpoints/.saving/` is a save that
    never finished: both are skipped, and `log` is told each one it skips.
    """
    root = Path(run_dir) / "checkpoints"
    ckpts = sorted(root.glob("checkpoint-*"), key=_step_of, reverse=True)
    chosen = next((c for c in ckpts if c.is_dir() and (c / CHECKPOINT_STATE).is_file()), None)
    if log is not None:
        floor = _step_of(chosen) if chosen else -1
        skipped = [c for c in ckpts if c is not chosen and _step_of(c) > floor]
        skipped += [c for c in (root / SAVING_DIR).glob("checkpoint-*") if _step_of(c) >= floor]
        for ckpt in sorted(skipped, key=_step_of, reverse=True):
            log(f"--resume: skipping incomplete checkpoint {ckpt} (its save was cut short)")
    return chosen


def find_checkpoint(ws_root: Path, stage: str, ref: str, *, exclude: str | None = None, log=None) -> Path:
    """Resolve `--resume [RUN]` (`latest`: the newest earlier run of the stage with a whole checkpoint)."""
    ws_root = Path(ws_root)
    if ref == "latest":
        for run in reversed(list_runs(ws_root, stage)):
            if run.id != exclude and (ckpt := last_checkpoint(run.path, log=log)):
                return ckpt
        raise ResumeError(f"--resume: no earlier {stage} run with a complete checkpoint in {ws_root / 'runs'}")
    try:
        run_dir = find_run(ws_root, ref).path
    except LookupError as e:
        raise ResumeError(f"--resume: {e.args[0]}") from None
    other = run_state(run_dir).get("stage")
    if isinstance(other, str) and other != stage:
        raise ResumeError(
            f"--resume: run {run_dir.name} is a {other} run, not {stage}: its checkpoint cannot continue {stage}"
        )
    ckpt = last_checkpoint(run_dir, log=log)
    if ckpt is None:
        raise ResumeError(f"--resume: run {run_dir.name} has no complete checkpoint to resume from")
    return ckpt


def lr_factor(kind: str, step: int, total: int, warmup: int) -> float:
    """The schedule's multiplier of the peak learning rate after `step` optimizer steps (transformers' formulas)."""
    if kind != "constant" and step < warmup:
        return step / max(1, warmup)
    if kind == "linear":
        return max(0.0, (total - step) / max(1, total - warmup))
    if kind == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    return 1.0  # constant, constant_with_warmup after its warm-up


def warmup_steps(value: float, total: int) -> int:
    """transformers' reading of `warmup_steps`: below 1 a fraction of the steps, else a count."""
    return int(value) if value >= 1 else math.ceil(total * value)


def flatten(config: dict) -> dict:
    """`{section: {key: value}}` → `{"section.key": value}`."""
    out = {}
    for section, values in config.items():
        if isinstance(values, dict):
            out.update({f"{section}.{k}": v for k, v in values.items()})
    return out


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ResumeError(f"--resume: cannot read {path}: {e}") from None


def read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ResumeError(f"--resume: cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise ResumeError(f"--resume: {path} is not a JSON object")
    return data


def _number(value, default=None):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default


@dataclass
class Schedule:
    """The learning-rate schedule a resumed run continues: its kind, the checkpoint's peak, its warm-up and length."""

    kind: str
    peak: float
    total: int
    warmup: int

    def lr_after(self, step: int) -> float:
        """The learning rate the optimizer uses for step `step + 1` (the one logged at step `step + 1`)."""
        return self.peak * lr_factor(self.kind, step, self.total, self.warmup)


def schedule_of(stage: str, config: dict, total: int) -> Schedule | None:
    """The schedule a run of `stage` trains with under `config` (flat keys), over `total` steps."""
    if stage not in SCHEDULES or total <= 0:
        return None
    section, kind_key, warmup_key = SCHEDULES[stage]
    kind = config.get(kind_key) if kind_key else "linear"
    ratio = config.get(warmup_key) if warmup_key else 0.0
    peak = _number(config.get(f"{section}.learning_rate"))
    if peak is None or not isinstance(kind, str):
        return None
    return Schedule(kind, float(peak), total, warmup_steps(float(_number(ratio, 0.0)), total))


@dataclass
class ResumeFacts:
    """What a resume continues from and what changed since; `refusal(force)` says whether it may start."""

    stage: str
    run_id: str
    checkpoint: Path
    step: int
    total: int | None  # the steps the resumed run will take in all (None: decided by epochs)
    epoch: float | None
    samples: int | None  # training samples seen so far (step × batch × grad_accum, per process)
    schedule: Schedule | None  # the new run's schedule (its peak restored from the checkpoint)
    resumed_lr: float | None = None  # the rate the checkpoint's optimizer holds: step + 1 trains with it
    changed: list = field(default_factory=list)  # (key, before, now)
    shape_keys: list = field(default_factory=list)
    data_keys: list = field(default_factory=list)

    @property
    def next_lr(self) -> float | None:
        if self.resumed_lr is not None:
            return self.resumed_lr
        return self.schedule.lr_after(self.step) if self.schedule else None

    @property
    def schedule_jumps(self) -> bool:
        """Whether the new schedule disagrees with the rate the checkpoint holds (a changed length or shape)."""
        if self.schedule is None or self.resumed_lr is None:
            return False
        return abs(self.schedule.lr_after(self.step) - self.resumed_lr) > LR_TOLERANCE * max(self.schedule.peak, 1e-12)

    def record(self) -> dict:
        """What the continuity check needs (state.json `resume`, with the data hashes beside it)."""
        return {
            "from_run": self.run_id,
            "checkpoint": str(self.checkpoint),
            "step": self.step,
            "epoch": self.epoch,
            "schedule": vars(self.schedule).copy() if self.schedule else None,
            "resumed_lr": self.resumed_lr,
            "forced": list(self.data_keys),
        }

    def refusal(self, force: bool = False) -> str | None:
        """Why this resume may not start (None: it may); `force` accepts changed data, never a changed shape."""
        if self.shape_keys:
            return t(
                "--resume {run}: {keys} changed since the checkpoint was saved; its weights cannot continue "
                "under them (--force does not change that): put them back, or start a new run without --resume",
                run=self.run_id,
                keys=", ".join(self.shape_keys),
            )
        if self.data_keys and not force:
            return t(
                "--resume {run}: {keys} changed since the checkpoint was saved, so its data position means "
                "nothing now: put them back, or add --force to continue on the new data",
                run=self.run_id,
                keys=", ".join(self.data_keys),
            )
        return None

    def lines(self) -> list[str]:
        """The facts, one per line, in the UI language."""
        out = [t("resuming {run} from {checkpoint}", run=self.run_id, checkpoint=self.checkpoint.name)]
        total = f"/{self.total}" if self.total else ""
        out.append(
            t("  step: {step}{total} (the next step is {next})", step=self.step, total=total, next=self.step + 1)
        )
        if self.schedule:
            out.append(
                t(
                    "  learning rate: {lr:.4g} next ({kind}, peak {peak:.4g} from the checkpoint, "
                    "{warmup} warm-up steps of {steps})",
                    lr=self.next_lr,
                    kind=self.schedule.kind,
                    peak=self.schedule.peak,
                    warmup=self.schedule.warmup,
                    steps=self.schedule.total,
                )
            )
        else:
            out.append(t("  learning rate: unknown (the schedule's length is decided by epochs)"))
        if self.schedule_jumps:
            out.append(
                t(
                    "  warning: the schedule changed since the checkpoint: step {next} still trains at the "
                    "checkpoint's {old:.4g}, the steps after it follow the new schedule ({new:.4g} at step {after})",
                    next=self.step + 1,
                    old=self.resumed_lr,
                    new=self.schedule.lr_after(self.step + 1),
                    after=self.step + 2,
                )
            )
        if self.total and self.step >= self.total:
            out.append(
                t(
                    "  note: the checkpoint is at step {step} of {total}: nothing is left to train "
                    "(raise {section}.max_steps to go on)",
                    step=self.step,
                    total=self.total,
                    section=SCHEDULES.get(self.stage, (self.stage,))[0],
                )
            )
        epoch = f"{self.epoch:.3f}" if self.epoch is not None else "?"
        samples = str(self.samples) if self.samples is not None else "?"
        out.append(t("  data position: epoch {epoch}, {samples} samples seen", epoch=epoch, samples=samples))
        if not self.changed:
            out.append(t("  config: unchanged since the checkpoint's run"))
        else:
            out.append(t("  config changed since the checkpoint's run:"))
            for key, before, now in self.changed:
                mark = " !" if key in self.shape_keys or key in self.data_keys else ""
                out.append(f"    {key}: {_show(before)} → {_show(now)}{mark}")
        return out


def _show(value) -> str:
    if value is None:
        return t("(absent)")
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (str, list)) else str(value)


def data_hashes(ws_root: Path, recorded: dict) -> dict:
    """Current content hashes of the workspace data files named in `recorded` (an unreadable one: None)."""
    from ftmodel.fingerprint import hash_path

    out = {}
    for rel in recorded:
        if not str(rel).startswith("data/"):
            continue  # the SFT adapter GRPO started from: the checkpoint holds its own weights
        try:
            out[rel] = hash_path(Path(ws_root) / rel)
        except OSError:
            out[rel] = None
    return out


def recorded_inputs(state: dict) -> dict:
    """The data hashes a run recorded: its fingerprint's, or for a resumed run the ones it checked."""
    parts = (state.get("fingerprint") or {}).get("parts") or {}
    inputs = parts.get("inputs") if isinstance(parts, dict) else None
    if not inputs:
        inputs = (state.get("resume") or {}).get("inputs")
    return {k: v for k, v in (inputs or {}).items() if isinstance(k, str) and str(k).startswith("data/")}


def resume_facts(ws_root: Path, stage: str, ref: str, config: dict, *, exclude: str | None = None, log=None):
    """The facts of resuming `ref` (a run id or `latest`) for `stage` under `config` (nested dict)."""
    ckpt = find_checkpoint(ws_root, stage, ref, exclude=exclude, log=log)
    run_dir = ckpt.parent.parent
    state = read_json(ckpt / CHECKPOINT_STATE)
    now = flatten(config)
    # A key the checkpoint's config lacks (written by an older ftmodel, or by hand) had its default then.
    defaults = flatten(Config().to_dict())
    before = {**{k: v for k, v in defaults.items() if k in now}, **flatten(read_toml(run_dir / "config.toml"))}
    step = int(_number(state.get("global_step"), 0))
    section = SCHEDULES.get(stage, (stage,))[0]
    asked = _number(now.get(f"{section}.max_steps"), 0)
    # The new run's length: max_steps if set, else (same data, epochs and batch) the checkpoint's.
    total = int(asked) if asked and asked > 0 else _number(state.get("max_steps"))
    peak = {f"{section}.learning_rate": before.get(f"{section}.learning_rate")}
    schedule = schedule_of(stage, {**now, **peak}, int(total)) if total else None
    # The optimizer's state holds the rate the checkpoint's own schedule set after its last step.
    old_total = _number(state.get("max_steps"))
    old_schedule = schedule_of(stage, before, int(old_total)) if old_total else None
    resumed_lr = old_schedule.lr_after(step) if old_schedule else None
    batch = _number(state.get("train_batch_size")) or _number(before.get(f"{section}.batch_size"))
    accum = _number(before.get(f"{section}.grad_accum"), 1)
    changed = [(k, before.get(k), now.get(k)) for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
    changed_keys = {k for k, _, _ in changed}
    data_keys = [k for k in DATA_KEYS if k in changed_keys]
    recorded = recorded_inputs(run_state(run_dir))
    for rel, digest in data_hashes(ws_root, recorded).items():
        if digest != recorded[rel]:
            data_keys.append(rel)
            was = f"sha256:{str(recorded[rel])[:12]}"
            changed.append((rel, was, f"sha256:{str(digest)[:12]}" if digest else None))
    return ResumeFacts(
        stage=stage,
        run_id=run_dir.name,
        checkpoint=ckpt,
        step=step,
        total=int(total) if total else None,
        epoch=float(state["epoch"]) if _number(state.get("epoch")) is not None else None,
        samples=int(step * batch * accum) if batch else None,
        schedule=schedule,
        resumed_lr=resumed_lr,
        changed=changed,
        shape_keys=[k for k in SHAPE_KEYS if k in changed_keys],
        data_keys=data_keys,
    )


def run_state(run_dir: Path) -> dict:
    try:
        data = json.loads((run_dir / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def continuity_problem(facts: dict, step: int, lr: float | None, epoch: float | None) -> str | None:
    """Check the first logged step of a resumed run against its checkpoint (`facts`: the state.json
    `resume` record); None when it continues where it stopped, else what is wrong."""
    expected = int(facts.get("step", 0))
    interval = max(1, int(facts.get("logging_steps") or 1))
    if not expected < step <= expected + interval:
        return f"the first step after the resume is {step}, not {expected + 1} (checkpoint step {expected} + 1)"
    if epoch is not None and facts.get("epoch") is not None and epoch < float(facts["epoch"]):
        return f"the data position went back: epoch {epoch:.4f} after the checkpoint's {float(facts['epoch']):.4f}"
    sched = facts.get("schedule")
    if lr is not None and isinstance(sched, dict):
        schedule = Schedule(sched["kind"], float(sched["peak"]), int(sched["total"]), int(sched["warmup"]))
        want = schedule.lr_after(step - 1)
        if step == expected + 1 and facts.get("resumed_lr") is not None:
            want = float(facts["resumed_lr"])  # the first step trains at the rate the checkpoint's optimizer holds
        if abs(lr - want) > LR_TOLERANCE * max(schedule.peak, 1e-12) + 1e-12:
            return (
                f"the learning rate at step {step} is {lr:.6g}, not {want:.6g} as the schedule continues "
                f"({schedule.kind}, peak {schedule.peak:.4g})"
            )
    return None
