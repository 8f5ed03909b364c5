"""The run sentinel: rules that catch a run going wrong (a NaN, a stall, GRPO with no learning
signal, …), with the evidence and what to try.

One set of rules serves every reader. Inside a training process the tracker feeds each logged row
to a `RunWatch`, which records new alerts, runs `[alerts] command` and honours `[alerts] stop_on`.
A stall cannot be seen from inside a frozen process, so `check_stall` looks at a run from outside:
the stage's watchdog (`ftmodel/watchdog.py`), `ftmodel runs`, `ftmodel follow`, the queue runner
and the console all call it. Recording is idempotent (one alert per rule per episode, keyed, under
a lock), so an alert and its command happen once, whoever sees it first.

Alerts are appended to `<run>/alerts.jsonl` as strict JSON lines. Each stores its rule id, stage,
step, time, the evidence (`values`) and the fields of its message (`params`), so the CLI and the
console show it in the UI language (`Alert.text()`, `Alert.hint_text()`, `describe`); the English
text is stored too, for wandb and the user's command.

Modules: `messages` (templates and number formats), `alerts` (the record, the file, recording and
the command), `rules` (the row rules and `Sentinel`), `watch` (`RunWatch`, stalls), `replay` (the
rules over a run recorded without them). Stdlib only:
the console imports this package.

For a reader such as the console (nothing here needs the ML stack):
- a marker per run: `count_alerts(run_dir)` (counts lines, parses nothing);
- the alerts of a run: `read_alerts(run_dir)`, or `AlertsReader(run_dir).read_new()` while following;
  each shows itself in the UI language with `alert.text()`, `alert.hint_text()` or `describe(alert)`;
- a stall nobody else saw: `check_stall(Run(run_dir), status=<the run's status>, source="console")`
  every few seconds for running runs (it records the alert once, like every other checker);
- a run recorded before the sentinel existed (no alerts.jsonl, and `watched_live(run)` is False: its
  config snapshot has no `[alerts]` table): `replay_alerts(run, status, max_rows=
  REPLAY_ROWS)` streams its metrics.jsonl through `Sentinel(stage, *settings_for(run))` and gives the
  same alerts (source "replay") without recording them, never for a run still active;
- `config_notes(stage, facts)` says "no KL: grpo.beta is 0" (what the console's GRPO hints said, with
  the zero-variance and clipping rules).
"""

from ftmodel.sentinel.alerts import (
    ALERTS_FILE,
    COMMAND_LOG,
    Alert,
    AlertsReader,
    command_environment,
    count_alerts,
    default_settings,
    describe,
    read_alerts,
    record_alerts,
    rule_help,
    stops_on,
)
from ftmodel.sentinel.messages import HINTS, MESSAGES, NO_KL_NOTE, clean_text, fmt, message_ids
from ftmodel.sentinel.replay import REPLAY_ROWS, REPLAY_SOURCE, Replay, StillActive, replay_alerts, watched_live
from ftmodel.sentinel.rules import ROW_RULES, Facts, Sentinel, config_notes
from ftmodel.sentinel.watch import RunWatch, StallClock, check_stall, process_state, settings_for, stall_clock
from ftmodel.words import ALERT_RULES

__all__ = [
    "ALERTS_FILE",
    "ALERT_RULES",
    "COMMAND_LOG",
    "HINTS",
    "MESSAGES",
    "NO_KL_NOTE",
    "REPLAY_ROWS",
    "REPLAY_SOURCE",
    "ROW_RULES",
    "Alert",
    "AlertsReader",
    "Facts",
    "Replay",
    "RunWatch",
    "Sentinel",
    "StallClock",
    "StillActive",
    "check_stall",
    "clean_text",
    "command_environment",
    "config_notes",
    "count_alerts",
    "default_settings",
    "describe",
    "fmt",
    "message_ids",
    "process_state",
    "read_alerts",
    "record_alerts",
    "replay_alerts",
    "watched_live",
    "rule_help",
    "settings_for",
    "stall_clock",
    "stops_on",
]
