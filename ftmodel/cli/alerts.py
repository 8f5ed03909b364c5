"""`ftmodel alerts [RUN]`: what the run sentinel saw (rule, step, evidence, what to try), and the
helpers `runs` and `follow` share to show alerts and to check running stages for a stall.

`ftmodel alerts RUN --replay` says what the rules say about a finished run's metric rows (a run
recorded before the sentinel existed has no alerts.jsonl), marked as replayed, and writes nothing.
`--record` writes them, with `source: "replay"`, through the one recording path: their keys are the
trainer's, so an alert the run already has is not written twice, and the console's markers and
`ftmodel runs` then show them at no cost. It does not run `[alerts] command`: a webhook about a run
that ended long ago is no news."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from ftmodel.cli.common import add_workspace, workspace_of
from ftmodel.i18n import t
from ftmodel.launcher import run_status
from ftmodel.rundir import Run, dumps_strict, find_run, list_runs
from ftmodel.sentinel import (
    REPLAY_SOURCE,
    Alert,
    check_stall,
    default_settings,
    describe,
    read_alerts,
    record_alerts,
    replay_alerts,
    rule_help,
)


def add_parsers(sub) -> None:
    """Register `alerts`."""
    p = sub.add_parser("alerts", help="what the run sentinel saw: rule, step, evidence and what to try")
    p.add_argument("run", nargs="?", help="a run id or unique prefix (default: every run with alerts)")
    p.add_argument("--json", action="store_true", help="one JSON record per alert (English), for scripts")
    p.add_argument("--rules", action="store_true", help="list the rules ([alerts] stop_on takes their ids)")
    p.add_argument(
        "--replay",
        action="store_true",
        help="what the rules say about a finished run's metrics.jsonl (recorded before the sentinel); writes nothing",
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="with --replay: append them to the run's alerts.jsonl (source: replay; no [alerts] command runs)",
    )
    add_workspace(p)


def stall_check(run: Run, status: str, source: str) -> Alert | None:
    """Check a running stage for a stall and record it; never fails the command that asked (a run
    directory we may not write to is only read)."""
    if status != "running":
        return None
    try:
        return check_stall(run, status=status, source=source)
    except OSError:
        try:
            return check_stall(run, status=status, source=source, record=False)
        except OSError:
            return None


def alerts_cell(run: Run) -> str:
    """The `runs` column: how many alerts and the newest rule (`2 stall`), empty when none."""
    # The alerts that read, as the console counts them: a torn or foreign line is not an alert.
    alerts = read_alerts(run)
    return f"{len(alerts)} {alerts[-1].rule}" if alerts else ""


def alert_lines(alert: Alert, run_id: str) -> list[str]:
    """An alert as `follow` and `alerts` print it, in the UI language."""
    try:
        when = time.strftime("%H:%M:%S", time.localtime(alert.time)) if alert.time else "?"
    except (OverflowError, OSError, ValueError):  # a time from a run's rows (replayed): inf, 1e308, NaN
        when = "?"
    step = "?" if alert.step is None else alert.step
    if alert.source == REPLAY_SOURCE:
        head = t("REPLAYED {rule} in {run} at step {step} ({time})", rule=alert.rule, run=run_id, step=step, time=when)
    else:
        head = t("ALERT {rule} in {run} at step {step} ({time})", rule=alert.rule, run=run_id, step=step, time=when)
    return [head, *("  " + line for line in describe(alert))]


def print_alerts(runs: list[Run], out=None, *, as_json: bool = False) -> int:
    """Print the alerts of `runs`; return how many there were."""
    out = out or sys.stdout
    shown = 0
    for run in runs:
        for alert in read_alerts(run):
            shown += 1
            if as_json:
                print(dumps_strict({**alert.to_json(), "run_id": run.id}, ensure_ascii=False), file=out)
            else:
                print("\n".join(alert_lines(alert, run.id)), file=out)
    return shown


def cmd_alerts(ns: argparse.Namespace, argv: list[str]) -> int:
    """`ftmodel alerts [RUN] [--json] [--rules]`."""
    if ns.rules:
        for rule, text in rule_help():
            print(f"{rule:22} {text}")
        print(t("`[alerts] stop_on` takes these ids (and `nonfinite` for the four non-finite rules)"))
        return 0
    workspace = workspace_of(ns)
    if ns.record and not ns.replay:
        raise SystemExit(t("--record writes what --replay saw: give both"))
    if ns.replay:
        if not ns.run:
            raise SystemExit(t("--replay needs a run: ftmodel alerts RUN --replay"))
        return replay_command(find_run(workspace, ns.run), as_json=ns.json, record=ns.record)
    if ns.run:
        run = find_run(workspace, ns.run)
        runs = [run, *(Run(run.path.parent / c) for c in run.read_state().get("children", []))]
    else:
        runs = list_runs(workspace)
    for run in runs:  # a stall nobody was watching is found now
        stall_check(run, run_status(run), "ftmodel alerts")
    if not print_alerts(runs, as_json=ns.json) and not ns.json:
        print(t("no alerts in {path}", path=runs[0].path if ns.run else workspace / "runs"))
    return 0


def replay_command(run: Run, *, as_json: bool, record: bool) -> int:
    """`ftmodel alerts RUN --replay [--record]`: the run and the runs it started, each replayed whole."""
    from ftmodel.sentinel import StillActive

    # The children are run names, each once (`coerce_state`); only those whose directory exists.
    children = [Run(run.path.parent / name) for name in run.read_state().get("children", []) if name != run.id]
    runs = [run, *(each for each in children if each.state_path.is_file())]
    failed = 0
    for each in runs:
        try:
            replay = replay_alerts(each, run_status(each))
        except StillActive as e:
            print(t("not replayed: {reason}", reason=e), file=sys.stderr)
            failed = 1
            continue
        for alert in replay.alerts:
            alert.run_id = each.id
            if as_json:
                print(dumps_strict({**alert.to_json(), "replayed": True}, ensure_ascii=False))
            else:
                print("\n".join(alert_lines(alert, each.id)))
        if record:
            # The schema's [alerts] settings: their command is empty, so no command runs for an old run.
            new = record_alerts(each, replay.alerts, default_settings(), source=REPLAY_SOURCE)
            said = t(
                "{run}: replayed {rows} rows, {n} alerts; {new} new written to alerts.jsonl",
                run=each.id,
                rows=replay.rows,
                n=len(replay.alerts),
                new=len(new),
            )
        else:
            said = t(
                "{run}: replayed {rows} rows, {n} alerts (not recorded: --record writes them)",
                run=each.id,
                rows=replay.rows,
                n=len(replay.alerts),
            )
        print(said, file=sys.stderr if as_json else sys.stdout)
    return failed


class AlertFollower:
    """`ftmodel follow`'s view of alerts: prints each new one of the followed runs, and checks the
    running ones for a stall now and then (the same check the watchdog makes)."""

    STALL_CHECK_S = 5.0

    def __init__(self, write: Callable[[str], None]):
        from ftmodel.sentinel import AlertsReader

        self._reader_cls = AlertsReader
        self._readers: dict[str, AlertsReader] = {}
        self._write = write
        self._next_check = 0.0

    def pump(self, runs: list[Run]) -> bool:
        """Print new alerts of `runs`; say whether there were any."""
        if time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + self.STALL_CHECK_S
            for run in runs:
                stall_check(run, run_status(run), "ftmodel follow")
        moved = False
        for run in runs:
            reader = self._readers.setdefault(run.id, self._reader_cls(run))
            for alert in reader.read_new():
                self._write("\n".join(alert_lines(alert, run.id)) + "\n")
                moved = True
        return moved
