"""The main console's handlers for the run sentinel's alerts: the selected run's alerts (the status
block lists them) and a notification for each alert recorded while the console is open.

A mixin of ConsoleScreen, so its module stays about layout and the run's panels. The poll worker
reads the alerts (tui.screens.console_workers); these handlers own what is shown.
"""

from __future__ import annotations

from ftmodel.i18n import t
from tui.messages import AlertsRaised, AlertsRead
from tui.rundata.alerts import alert_line, severity

NOTIFY_SECONDS = 12  # an alert stays on screen long enough to be read; the status block keeps it after


class ConsoleAlerts:
    """Alert handlers of ConsoleScreen; they read its `selected_run` and own its `alerts`."""

    def on_alerts_read(self, message: AlertsRead) -> None:
        if message.run_id != self.selected_run:
            return
        if message.reset:  # alerts.jsonl was truncated or replaced: what it holds now is all there is
            self.alerts = []
        self.alerts = [*self.alerts, *message.alerts]
        self._refresh_status()

    def on_alerts_raised(self, message: AlertsRaised) -> None:
        """Tell each alert recorded since the console opened, once (those before it are in the status block)."""
        for run_id, alert in message.alerts:
            self.notify(
                alert_line(alert),
                title=t("alert in {run}", run=run_id),
                severity=severity(alert.rule),
                timeout=NOTIFY_SECONDS,
            )
