"""What the main console's status lines say about the selected run: state with a glyph that reads
without colour, exit code, error, progress, speed, ETA, the run sentinel's alerts (newest first),
values a chart cannot draw and notes about its config, all in the UI language.

Styled text is Textual `Content` (no widgets here). A run's own text (its id, error, state) is never
spliced into markup: Textual's markup has no escape that survives every text (`[2J` followed by
`\\[b]`, a trailing backslash), so values go in as template variables or assembled parts, which
are plain text by construction, with their control characters shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.content import Content

from ftmodel.i18n import t
from ftmodel.sentinel import Alert, Facts, config_notes
from ftmodel.textio import cell_width, printable
from tui.cells import cut
from tui.rundata.alerts import alert_line, marker, severity
from tui.rundata.series import DRAW_LIMIT, NonFinite, SeriesStore
from tui.rundata.summary import RunSummary, fmt_duration, speed_and_eta

# A glyph per state, so states read without colour (NO_COLOR, monochrome terminals).
STATUS_GLYPH = {
    "running": "●",
    "queued": "…",
    "finished": "✓",
    "failed": "✗",
    "cancelled": "■",
    "lost": "!",
    "unknown": "?",
}
STATUS_STYLE = {
    "running": "$success",
    "queued": "$warning",
    "finished": "$primary",
    "failed": "$error",
    "cancelled": "$warning",
    "lost": "$error",
}


def markup(template: str, **values: object) -> Content:
    """Content from markup we wrote, with `$name` filled by values from a run's files as plain text
    (never parsed as markup; control characters shown). Name values unlike theme colours ($error)."""
    return Content.from_markup(template, **{name: printable(value) for name, value in values.items()})


def status_label(status: str) -> Content:
    """A state as shown: its glyph, then its name in the UI language, coloured when there is colour.
    A state.json may hold any text as its state: such a state is shown as text, cut to fit a list."""
    if status in STATUS_GLYPH:
        label = f"{STATUS_GLYPH[status]} {t(status)}"
    else:
        label = cut(f"  {printable(t(status))}", 14)
    style = STATUS_STYLE.get(status)
    return Content.assemble((label, style)) if style else Content(label)


# How many alerts the status block lists (newest first); more are counted in one line. With the
# status, progress and notes lines this keeps the block within a third of an 80x24 screen.
STATUS_ALERTS = 3


def alert_marker(count: int, room: int | None = None, severe: bool = False) -> Content:
    """A run's alert marker for a list (` ⚠3`, in the error colour when `severe`, one of its alerts says
    the run is broken, else the warning colour), empty when it has none. With `room` (cells left on the
    line) it gets shorter rather than wrap: `⚠3`, then `⚠`."""
    shown = marker(count)
    if not shown:
        return Content("")
    for form in (" " + shown, shown, "⚠"):
        if room is None or cell_width(form) <= room:
            break
    return Content.assemble((form, "$error" if severe else "$warning"))


def alert_lines(alerts: list[Alert]) -> Content:
    """The status block's alert lines: newest first, one line each (the widget cuts, never wraps),
    coloured by severity, and how many more there are."""
    total = len(alerts)
    lines = [
        Content.assemble(("⚠ " + printable(alert_line(alert)), "$" + severity(alert.rule)))
        for alert in reversed(alerts[-STATUS_ALERTS:])
    ]
    if total > len(lines):
        more = total - len(lines)
        lines.append(Content(printable(t("+{count} more alerts (r: runs browser, Enter: details)", count=more))))
    return Content("\n").join(lines)


NOTE_KINDS = {"nan": "NaN", "inf": "inf", "-inf": "-inf"}


def note_text(metric: str, kind: str, note: NonFinite) -> str:
    """Say where a metric was not drawable as it is: `loss NaN from step 10 (31×)`, `… at step 10`."""
    what = NOTE_KINDS.get(kind) or t("beyond ±{limit} (drawn at the edge)", limit=f"{DRAW_LIMIT:g}")
    if note.count == 1:
        return t("{metric} {what} at step {step}", metric=metric, what=what, step=f"{note.first:g}")
    return t(
        "{metric} {what} from step {step} ({count}×)",
        metric=metric,
        what=what,
        step=f"{note.first:g}",
        count=note.count,
    )


@dataclass
class StatusView:
    """The status block: styled lines, the progress bar's state, the progress text and hints."""

    status: Content
    bar: bool | None = None  # whether the bar shows (None: as it was)
    total: int | None = None
    step: int = 0
    progress: str = ""
    hints: str = ""
    alerts: Content = field(default_factory=Content)


def child_alert_lines(children: list[RunSummary]) -> list[Content]:
    """A pipeline's lines for the runs it started that have alerts (its `⚠N` counts theirs too): how
    many each has, in its colour; the alerts themselves are listed when that run is selected."""
    return [
        Content.assemble(
            (
                "⚠ " + printable(t("{count} in its run {run}", count=child.alerts, run=child.id)),
                "$error" if child.alerts_severe else "$warning",
            )
        )
        for child in children
        if child.alerts
    ]


def status_view(
    summary: RunSummary | None,
    store: SeriesStore,
    facts: Facts | None,
    stage: str,
    run_id: str | None,
    alerts: list[Alert] | None = None,
    children: list[RunSummary] = (),
) -> StatusView:
    """Describe the selected run (or say that the stage has none, or that it is being read); `alerts`:
    what its alerts.jsonl held when last read (oldest first), `facts`: its config's facts, `children`:
    the runs it started (a pipeline's), whose alerts its marker counts."""
    if summary is None:
        if run_id:
            return StatusView(Content(printable(t("{run}: reading…", run=run_id))))
        return StatusView(
            markup(t("[b]{stage}[/b]: no runs yet — press [b]s[/b] to start it", stage="$stage"), stage=stage)
        )
    parts = [markup("[b]$run_id[/b]", run_id=summary.id), status_label(summary.status)]
    if summary.exit_code is not None:
        parts.append(Content(t("exit {code}", code=summary.exit_code)))
    if summary.current:
        parts.append(Content(printable(t("now: {stage}", stage=summary.current))))
    lines = [Content(" · ").join(parts)]
    if summary.error:
        lines.append(markup("[$error]$label[/] $message", label=t("error:"), message=summary.error))
    if summary.status == "lost":
        lines.append(
            Content.from_markup(t("[$error]its process is gone[/] (killed, machine rebooted?) — last log lines below"))
        )
    rate, eta = speed_and_eta(summary, store)
    total = summary.total if summary.total is not None else "?"
    bits = [f"{summary.step}/{total}"] if summary.step or summary.total or summary.active else []
    if rate:
        bits.append(t("{rate} steps/s", rate=f"{rate:.2f}" if rate < 10 else f"{rate:.0f}"))
    if summary.active:
        bits.append(t("ETA {time}", time=fmt_duration(eta)))
    elif summary.started and summary.ended:
        bits.append(t("took {time}", time=fmt_duration(summary.ended - summary.started)))
    hints = config_notes(summary.stage, facts) if facts is not None else []
    # A value that is not a finite number (a diverged run's NaN loss) is said first, in words.
    hints[:0] = [note_text(metric, kind, note) for metric, kind, note in store.notes()]
    # A finished stage that never counted steps has no progress to show, not an endless spinner.
    return StatusView(
        Content("\n").join(lines),
        bar=summary.active or bool(summary.total),
        total=summary.total or None,
        step=summary.step,
        progress="  ".join(bits),
        hints="\n".join(f"⚠ {h}" for h in hints),
        alerts=Content("\n").join(([alert_lines(alerts)] if alerts else []) + child_alert_lines(children)),
    )
