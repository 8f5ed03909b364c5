"""Plain-Python logic behind the console's workbench screens (no Textual, no ML stack).

The config document (edits on the parsed tomlkit document, diff, on-disk change detection), the
runs table (final metrics, wandb mode, sync state), the ablation matrix and the GRPO completions
reader are all here so they can be tested without a terminal and run in thread workers.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftmodel import config as config_mod
from ftmodel.reports import AblationMatrix, read_ablation  # noqa: F401 - the screens read them from here
from ftmodel.rundir import atomic_write_text, parse_metric_lines, restore_nonfinite
from ftmodel.words import VARIANTS as VARIANT_NAMES  # noqa: F401
from tui.view import RunSummary, fmt_duration

# ---------------------------------------------------------------- the config document


class ConfigChangedOnDisk(Exception):
    """The file changed since it was read: saving would overwrite someone else's edit."""


def file_fingerprint(path: Path) -> tuple[float, str] | None:
    """Return (mtime, sha256) of a file, or None when it cannot be read."""
    try:
        data = Path(path).read_bytes()
        return Path(path).stat().st_mtime, hashlib.sha256(data).hexdigest()
    except OSError:
        return None


def display_value(value: Any) -> str:
    """Render a field value as the form shows it (lists comma-separated)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


class ConfigDocument:
    """One TOML config being edited: the file's text, the user's pending edits and what they'd save.

    Edits are applied to a tomlkit document parsed from the file's text, so saving keeps the file's
    comments, key order and formatting; with no edits the file is never rewritten.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.pending: dict[tuple[str, str], Any] = {}
        self.invalid: dict[tuple[str, str], str] = {}
        self.reload()

    @property
    def packaged(self) -> bool:
        """Whether this is ftmodel's own packaged default (read-only: `ftmodel init` makes a copy to edit)."""
        from ftmodel.profiles import PACKAGE_DIR

        return self.path.resolve().parent == PACKAGE_DIR

    def reload(self) -> None:
        """Read the file again and drop every pending edit."""
        self.text = self.path.read_text(encoding="utf-8")
        self.fingerprint = file_fingerprint(self.path)
        self.data = tomllib.loads(self.text)
        self.pending.clear()
        self.invalid.clear()

    def file_value(self, section: str, key: str) -> Any:
        """The value the file gives (the schema default when the file omits it)."""
        values = self.data.get(section, {})
        if key in values:
            return values[key]
        for name, _, default, _ in config_mod.field_specs(section):
            if name == key:
                return default
        raise KeyError(f"{section}.{key}")

    def value(self, section: str, key: str) -> Any:
        """The value the form shows: the pending edit, else the file's."""
        return self.pending.get((section, key), self.file_value(section, key))

    def edit(self, section: str, key: str, raw: Any) -> Any:
        """Validate and record one edit (raises ConfigError with the reason; the field is then invalid)."""
        try:
            value = config_mod.validate_value(section, key, raw)
        except config_mod.ConfigError as e:
            self.invalid[(section, key)] = str(e)
            raise
        self.invalid.pop((section, key), None)
        if _same(value, self.file_value(section, key)):
            self.pending.pop((section, key), None)
        else:
            self.pending[(section, key)] = value
        return value

    @property
    def dirty(self) -> bool:
        return bool(self.pending)

    def rendered(self) -> str:
        """The text saving would write: the file's text with the pending edits applied by tomlkit."""
        if not self.pending:
            return self.text
        import tomlkit

        doc = tomlkit.parse(self.text)
        for (section, key), value in self.pending.items():
            if section not in doc:
                doc.add(section, tomlkit.table())
            doc[section][key] = value
        return tomlkit.dumps(doc)

    def diff(self) -> str:
        """A unified diff of the file against what saving would write."""
        return "".join(
            difflib.unified_diff(
                self.text.splitlines(True),
                self.rendered().splitlines(True),
                fromfile=f"{self.path} (on disk)",
                tofile=f"{self.path} (edited)",
            )
        )

    def config(self) -> config_mod.Config:
        """The whole edited config, validated (cross-field rules too); raises ConfigError."""
        if self.invalid:
            raise config_mod.ConfigError("; ".join(self.invalid.values()))
        text = self.rendered()
        if not self.pending:
            return config_mod.from_dict(tomllib.loads(text), source=str(self.path), text=text)
        # Line numbers of the edited text are not the file's: name the file as edited, cite no line.
        return config_mod.from_dict(tomllib.loads(text), source=f"{self.path} (with unsaved edits)")

    def changed_on_disk(self) -> bool:
        """Tell whether the file differs from the text this document was read from."""
        now = file_fingerprint(self.path)
        if now is None or self.fingerprint is None:
            return now != self.fingerprint
        return now[1] != self.fingerprint[1]

    def save(self) -> bool:
        """Write the edits (validated first); return False when there was nothing to write.

        Raises ConfigChangedOnDisk instead of overwriting a file changed by someone else.
        """
        if self.changed_on_disk():
            raise ConfigChangedOnDisk(f"{self.path} changed on disk since it was opened")
        if not self.pending:
            return False
        self.config()  # never write a config that fails to load
        text = self.rendered()
        atomic_write_text(self.path, text)
        self.reload()
        return True

    def overrides(self) -> list[str]:
        """The pending edits as `--set section.key=value` specs (for a one-off run's argv)."""
        out = []
        for (section, key), value in self.pending.items():
            out.append(f"{section}.{key}={json.dumps(value)}")
        return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return float(a) == float(b) and type(a) is not bool and type(b) is not bool
        except (TypeError, ValueError):
            return False
    return a == b and type(a) is type(b)


def snapshot_diff(run_config: Path, current: config_mod.Config) -> str:
    """Diff a run's config snapshot against the current config (both rendered as full snapshots)."""
    try:
        text = Path(run_config).read_text(encoding="utf-8")
        snap = config_mod.from_dict(tomllib.loads(text))
    except (OSError, ValueError, config_mod.ConfigError) as e:
        return f"(cannot read the snapshot: {e})"
    lines = []
    a, b = snap.to_dict(), current.to_dict()
    for section in a:
        for key in a[section]:
            if a[section][key] != b[section][key]:
                lines.append(f"{section}.{key}: run {a[section][key]!r} → now {b[section][key]!r}")
    return "\n".join(lines) or "same as the current config"


# ---------------------------------------------------------------- runs table

KEY_METRICS = ("loss", "reward", "answer_accuracy")


@dataclass
class RunRow:
    """One line of the runs browser."""

    summary: RunSummary
    metrics: dict[str, float] = field(default_factory=dict)
    wandb_mode: str = "—"
    sync: str = "—"

    @property
    def id(self) -> str:
        return self.summary.id

    def cells(self) -> tuple[str, ...]:
        s = self.summary
        start = _clock(s.started or s.created)
        duration = fmt_duration((s.ended or _now()) - s.started) if s.started else "—"
        return (
            s.id,
            s.stage,
            s.status,
            start,
            duration,
            *(_num(self.metrics.get(m)) for m in KEY_METRICS),
            self.wandb_mode,
            self.sync,
        )

    def matches(self, stage: str | None, state: str | None, text: str) -> bool:
        s = self.summary
        if stage and s.stage != stage:
            return False
        if state and s.status != state:
            return False
        return not text or text.lower() in " ".join(self.cells()).lower()


def _now() -> float:
    import time

    return time.time()


def _clock(t: float | None) -> str:
    import time

    return time.strftime("%m-%d %H:%M", time.localtime(t)) if t else "—"


def _num(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def last_metrics(run_path: Path, names=KEY_METRICS, tail_bytes: int = 256 * 1024) -> dict[str, float]:
    """The last logged value of each named metric (reads only the end of metrics.jsonl), plus
    answer_accuracy from an eval report when the run has one."""
    out: dict[str, float] = {}
    path = Path(run_path) / "metrics.jsonl"
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - tail_bytes))
            lines = fh.read().split(b"\n")
    except OSError:
        lines = []
    for line in reversed(lines):
        if len(out) == len(names):
            break
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict):
            continue
        for name in names:
            v = row.get(name)
            if name not in out and isinstance(v, (int, float)) and not isinstance(v, bool):
                out[name] = float(v)
    if "answer_accuracy" in names and "answer_accuracy" not in out:
        for report in sorted(Path(run_path).glob("eval_*.json")):
            try:
                v = json.loads(report.read_text(encoding="utf-8")).get("answer_accuracy")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(v, (int, float)):
                out["answer_accuracy"] = float(v)
    return out


def run_rows(summaries: list[RunSummary], workspace: Path) -> list[RunRow]:
    """Build the runs browser's rows, newest first (done in a worker: it reads files)."""
    from ftmodel.sync import list_offline_runs

    sync_state: dict[str, str] = {}
    try:
        for off in list_offline_runs(workspace):
            sync_state[off.run_id] = off.state
    except OSError:
        pass
    rows = []
    for s in reversed(summaries):
        try:
            state = json.loads((s.path / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = {}
        wandb = state.get("wandb") or {}
        rows.append(
            RunRow(
                s,
                last_metrics(s.path),
                wandb.get("mode") or "—",
                sync_state.get(s.id, "—" if wandb.get("mode") != "offline" else "never"),
            )
        )
    return rows


def artifacts(run_path: Path) -> list[tuple[str, int]]:
    """Files and folders a run made (name, bytes), the run-dir protocol files left out."""
    skip = {"state.json", ".state.lock", "config.toml", "metrics.jsonl", "stage.log"}
    out = []
    for p in sorted(Path(run_path).iterdir()):
        if p.name in skip or p.name.startswith("."):
            continue
        if p.is_dir():
            size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            out.append((p.name + "/", size))
        else:
            out.append((p.name, p.stat().st_size))
    return out


def metric_series(run_path: Path, name: str) -> tuple[list[float], list[float]]:
    """All (step, value) points of one metric of a run."""
    from ftmodel.rundir import MetricsReader

    xs, ys = [], []
    for i, row in enumerate(MetricsReader(Path(run_path) / "metrics.jsonl").read_new()):
        v = row.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v:
            xs.append(row.get("step", i))
            ys.append(float(v))
    return xs, ys


# ---------------------------------------------------------------- GRPO completions


@dataclass
class Completion:
    """One sampled GRPO completion with its rewards."""

    step: int
    question: str
    answer: str
    qtype: str
    completion: str
    rewards: dict[str, float]

    @property
    def total(self) -> float:
        return sum(v for v in self.rewards.values() if isinstance(v, (int, float)) and v == v)

    def matches(self, qtype: str | None, zero_only: bool, text: str) -> bool:
        if qtype and self.qtype != qtype:
            return False
        if zero_only and self.total != 0:
            return False
        if text:
            t = text.lower()
            return t in self.completion.lower() or t in self.question.lower()
        return True


def read_completions(run_path: Path) -> list[Completion]:
    """Every row of a GRPO run's completions.jsonl (corrupt lines skipped)."""
    try:
        lines = (Path(run_path) / "completions.jsonl").read_bytes().split(b"\n")
    except OSError:
        return []
    return [
        Completion(
            int(row.get("step") or 0),
            str(row.get("question") or ""),
            str(row.get("answer") or ""),
            str(row.get("qtype") or ""),
            str(row.get("completion") or ""),
            {str(k): restore_nonfinite(v) for k, v in rewards.items()},
        )
        for row in parse_metric_lines(lines)
        for rewards in [row.get("rewards") if isinstance(row.get("rewards"), dict) else {}]
    ]


def remove_run_dir(path: Path) -> tuple[bool, str]:
    """Delete a run directory; return (removed, what happened, for the user).

    A run that is a symbolic link (a run moved to another disk) loses only the link: deleting
    through it would remove files outside the workspace. Nothing is reported deleted that is not.
    """
    import shutil

    from ftmodel.i18n import t

    path = Path(path)
    run_id = path.name
    if path.is_symlink():
        target = os.path.realpath(path)
        try:
            path.unlink()
        except OSError as e:
            return False, t("cannot remove the link {run}: {error}", run=run_id, error=e)
        return True, t("removed the link {run}; its files at {target} are kept", run=run_id, target=target)
    errors: list[str] = []
    shutil.rmtree(path, onerror=lambda fn, p, info: errors.append(f"{p}: {info[1]}"))
    if path.exists():
        return False, t("could not delete {run}: {error}", run=run_id, error=errors[0] if errors else "?")
    return True, t("deleted {run}", run=run_id)
