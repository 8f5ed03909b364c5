"""What the main console's status lines say about the selected run (plain text with Rich markup;
no Textual): state with a glyph that reads without colour, exit code, error, progress, speed, ETA
and GRPO health hints, all in the UI language."""

from __future__ import annotations

from dataclasses import dataclass

from rich.markup import escape

from ftmodel.i18n import t
from tui.rundata.health import health_hints
from tui.rundata.series import SeriesStore
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


def status_label(status: str) -> str:
    """A state as shown: its glyph, then its name in the UI language, coloured when there is colour."""
    label = f"{STATUS_GLYPH.get(status, ' ')} {t(status)}"
    style = STATUS_STYLE.get(status)
    return f"[{style}]{label}[/]" if style else label


@dataclass
class StatusView:
    """The status block: markup lines, the progress bar's state, the progress text and hints."""

    status: str
    bar: bool | None = None  # whether the bar shows (None: as it was)
    total: int | None = None
    step: int = 0
    progress: str = ""
    hints: str = ""


def status_view(
    summary: RunSummary | None, store: SeriesStore, beta: float | None, stage: str, run_id: str | None
) -> StatusView:
    """Describe the selected run (or say that the stage has none, or that it is being read)."""
    if summary is None:
        if run_id:
            return StatusView(t("{run}: reading…", run=run_id))
        return StatusView(t("[b]{stage}[/b]: no runs yet — press [b]s[/b] to start it", stage=stage))
    parts = [f"[b]{summary.id}[/b]", status_label(summary.status)]
    if summary.exit_code is not None:
        parts.append(t("exit {code}", code=summary.exit_code))
    if summary.current:
        parts.append(t("now: {stage}", stage=summary.current))
    lines = [" · ".join(parts)]
    if summary.error:
        lines.append(f"[$error]{t('error:')}[/] {escape(summary.error)}")
    if summary.status == "lost":
        lines.append(t("[$error]its process is gone[/] (killed, machine rebooted?) — last log lines below"))
    rate, eta = speed_and_eta(summary, store)
    total = summary.total if summary.total is not None else "?"
    bits = [f"{summary.step}/{total}"] if summary.step or summary.total or summary.active else []
    if rate:
        bits.append(t("{rate} steps/s", rate=f"{rate:.2f}" if rate < 10 else f"{rate:.0f}"))
    if summary.active:
        bits.append(t("ETA {time}", time=fmt_duration(eta)))
    elif summary.started and summary.ended:
        bits.append(t("took {time}", time=fmt_duration(summary.ended - summary.started)))
    hints = health_hints(summary.stage, store, beta)
    # A finished stage that never counted steps has no progress to show, not an endless spinner.
    return StatusView(
        "\n".join(lines),
        bar=summary.active or bool(summary.total),
        total=summary.total or None,
        step=summary.step,
        progress="  ".join(bits),
        hints="\n".join(f"⚠ {t(h)}" for h in hints),
    )
