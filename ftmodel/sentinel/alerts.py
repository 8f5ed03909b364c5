"""Alerts: the record (`Alert`), alerts.jsonl (read, follow, count) and the one recording path,
which also runs `[alerts] command` for each new alert."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftmodel.i18n import t
from ftmodel.rundir import MetricsReader, Run, dumps_strict, file_lock, parse_metric_lines, restore_nonfinite
from ftmodel.sentinel.messages import HINTS, LABELS, MESSAGES, clean_text, fill, fmt, is_number, variant_text
from ftmodel.words import ALERT_RULES, NONFINITE_RULES

ALERTS_FILE = "alerts.jsonl"
COMMAND_LOG = "alerts_command.log"
_LOCK = ".alerts.lock"


@dataclass
class Alert:
    """One alert: which rule fired, where, the evidence, and the words to say it."""

    rule: str
    stage: str
    step: int | None
    time: float
    key: str  # one per rule per episode: a second recording of the same key is dropped
    values: dict = field(default_factory=dict)  # the evidence, as numbers (NaN kept)
    params: dict = field(default_factory=dict)  # the message's fields, as text
    variant: str = ""
    hint_variant: str = ""
    run_id: str = ""
    source: str = ""  # who saw it: trainer, watchdog, ftmodel runs, console, queue runner …
    recorded: float | None = None
    log_tail: list = field(default_factory=list)

    @property
    def message(self) -> str:
        """The message in English (what wandb and the alert command get)."""
        return fill(variant_text(MESSAGES, self.rule, self.variant) or self.rule, self.params, translate=False)

    @property
    def hint(self) -> str:
        """What to try, in English."""
        return fill(variant_text(HINTS, self.rule, self.hint_variant), self.params, translate=False)

    def text(self) -> str:
        """The message in the UI language."""
        return clean_text(
            fill(variant_text(MESSAGES, self.rule, self.variant) or self.rule, self.params, translate=True)
        )

    def hint_text(self) -> str:
        """What to try, in the UI language."""
        return clean_text(fill(variant_text(HINTS, self.rule, self.hint_variant), self.params, translate=True))

    def to_json(self) -> dict:
        """The record written to alerts.jsonl."""
        return {
            "rule": self.rule,
            "stage": self.stage,
            "step": self.step,
            "time": round(self.time, 3),
            "key": self.key,
            "variant": self.variant,
            "hint_variant": self.hint_variant,
            "values": self.values,
            "params": self.params,
            "message": self.message,
            "hint": self.hint,
            "run_id": self.run_id,
            "source": self.source,
            "recorded": self.recorded,
            **({"log_tail": self.log_tail} if self.log_tail else {}),
        }

    @classmethod
    def from_json(cls, row: Any) -> Alert | None:
        """Read one alerts.jsonl record (untrusted: wrong types are dropped; None if it is not an alert)."""
        if not isinstance(row, dict) or not isinstance(row.get("rule"), str) or not isinstance(row.get("key"), str):
            return None
        step = row.get("step")
        when = row.get("time")
        recorded = row.get("recorded")
        values = row.get("values") if isinstance(row.get("values"), dict) else {}
        params = row.get("params") if isinstance(row.get("params"), dict) else {}
        tail = row.get("log_tail") if isinstance(row.get("log_tail"), list) else []
        return cls(
            rule=row["rule"],
            stage=row.get("stage") if isinstance(row.get("stage"), str) else "?",
            step=step if isinstance(step, int) and not isinstance(step, bool) else None,
            time=_timestamp(when) or 0.0,
            key=row["key"],
            values={str(k): restore_nonfinite(v) for k, v in values.items()},
            params={str(k): clean_text(v) for k, v in params.items()},
            variant=row.get("variant") if isinstance(row.get("variant"), str) else "",
            hint_variant=row.get("hint_variant") if isinstance(row.get("hint_variant"), str) else "",
            run_id=row.get("run_id") if isinstance(row.get("run_id"), str) else "",
            source=row.get("source") if isinstance(row.get("source"), str) else "",
            recorded=_timestamp(recorded),
            log_tail=[clean_text(line) for line in tail if isinstance(line, str)],
        )


# Times beyond this (the year 5138) are no times: `time.localtime` of inf or 1e308 raises.
_MAX_TIMESTAMP = 1e11


def _timestamp(value: Any) -> float | None:
    """A time from an alerts.jsonl as seconds since the epoch, or None (missing, text, NaN, ±inf, 1e308)."""
    if not is_number(value) or not 0 < value < _MAX_TIMESTAMP:  # NaN compares false: dropped too
        return None
    return float(value)


def default_settings():
    """The `[alerts]` defaults (the schema's)."""
    from ftmodel.config.schema import AlertsSection

    return AlertsSection()


def stops_on(settings, rule: str) -> bool:
    """Whether `[alerts] stop_on` names this rule (`nonfinite` names the four non-finite rules)."""
    names = set(settings.stop_on)
    return rule in names or ("nonfinite" in names and rule in NONFINITE_RULES)


def alerts_path(run: Run | Path) -> Path:
    return (run.path if isinstance(run, Run) else Path(run)) / ALERTS_FILE


def read_alerts(run: Run | Path) -> list[Alert]:
    """Every alert recorded for a run, oldest first (torn or foreign lines are skipped)."""
    path = alerts_path(run)
    try:
        data = path.read_bytes()
    except OSError:
        return []
    lines = data.split(b"\n")
    if not data.endswith(b"\n"):
        lines.pop()  # a line still being written
    return [a for a in map(Alert.from_json, parse_metric_lines(lines)) if a is not None]


class AlertsReader:
    """Follow a run's alerts.jsonl by byte offset (the console's and `ftmodel follow`'s reader)."""

    def __init__(self, run: Run | Path):
        self._reader = MetricsReader(alerts_path(run))

    def read_new(self) -> list[Alert]:
        return [a for a in map(Alert.from_json, self._reader.read_new()) if a is not None]


def count_alerts(run: Run | Path) -> int:
    """How many alerts a run has recorded (cheap: counts lines; the runs browser's marker)."""
    try:
        with open(alerts_path(run), "rb") as fh:
            return sum(1 for line in fh if line.endswith(b"\n") and line.strip())
    except OSError:
        return 0


def record_alerts(
    run: Run,
    alerts: list[Alert],
    settings=None,
    *,
    source: str,
    log: Callable[[str], None] | None = None,
) -> list[Alert]:
    """Append the alerts not recorded yet (by episode key) and run `[alerts] command` for each; return them.

    Several processes may see the same alert (the trainer, the watchdog, the console, the CLI): the
    lock makes the check and the append one step, so each alert is written, and its command run, once.
    """
    settings = settings if settings is not None else default_settings()
    new: list[Alert] = []
    with file_lock(run.path / _LOCK):
        known = {a.key for a in read_alerts(run)}
        for alert in alerts:
            if alert.key in known:
                continue
            known.add(alert.key)
            alert.run_id, alert.source, alert.recorded = run.id, alert.source or source, time.time()
            new.append(alert)
        if new:
            with open(alerts_path(run), "a", encoding="utf-8") as fh:
                for alert in new:
                    fh.write(dumps_strict(alert.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n")
                fh.flush()
    for alert in new:
        if log is not None:
            log(f"ALERT {alert.rule}: {alert.message}; try: {alert.hint}")
        if settings.command:
            run_command(run, alert, list(settings.command), settings.command_timeout_s, log=log)
    return new


def command_environment(run: Run, alert: Alert) -> dict[str, str]:
    """What the alert command finds in its environment (English text)."""
    return {
        "FTMODEL_ALERT_RUN": run.id,
        "FTMODEL_ALERT_STAGE": alert.stage,
        "FTMODEL_ALERT_RULE": alert.rule,
        "FTMODEL_ALERT_STEP": "" if alert.step is None else str(alert.step),
        "FTMODEL_ALERT_MESSAGE": clean_text(alert.message),
        "FTMODEL_ALERT_HINT": clean_text(alert.hint),
        "FTMODEL_ALERT_RUN_DIR": str(run.path.resolve()),
        "FTMODEL_ALERT_JSON": dumps_strict(alert.to_json(), ensure_ascii=False),
    }


def run_command(
    run: Run, alert: Alert, argv: list[str], timeout_s: float, *, log: Callable[[str], None] | None = None
) -> None:
    """Start the user's alert command, detached and bounded, without waiting for it.

    `argv` is an argument list: no shell sees a config value unless the user wrote one into it. A
    small supervisor (`python -m ftmodel.watchdog command`) runs it in its own session, kills it
    after `timeout_s` and appends its output to `<run>/alerts_command.log`, so a hanging webhook
    never blocks training and never outlives its bound, even when the process that saw the alert
    (a short CLI command) exits at once.
    """
    if not argv:
        return
    try:
        with open(run.path / COMMAND_LOG, "ab") as out:
            subprocess.Popen(
                [sys.executable, "-m", "ftmodel.watchdog", "command", str(timeout_s), "--", *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                env={**os.environ, **command_environment(run, alert)},
            )
    except OSError as e:  # the alert is recorded either way; say why its command did not start
        if log is not None:
            log(f"warning: the alert command could not start: {e}")


def describe(alert: Alert, *, evidence: bool = True) -> list[str]:
    """Lines that show one alert in the UI language: the message, what to try, the evidence."""
    lines = [alert.text()]
    if alert.hint:
        lines.append(t(LABELS[0], hint=alert.hint_text()))
    if evidence and alert.values:
        shown = " ".join(f"{clean_text(k)}={fmt(v)}" for k, v in alert.values.items())
        lines.append(t(LABELS[1], values=shown))
    for line in alert.log_tail if evidence else ():
        lines.append("  | " + line)
    return lines


def rule_help() -> list[tuple[str, str]]:
    """(rule id, its main message template in the UI language): what `ftmodel alerts --rules` prints."""
    return [(rule, t(MESSAGES[rule][next(iter(MESSAGES[rule]))])) for rule in ALERT_RULES]
