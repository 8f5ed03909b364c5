"""The one table of the console's actions: keys, footer labels, help text and palette entries.

Every screen's BINDINGS, the help screen and the command palette are built from `ACTIONS`, so a
key is described once. Labels and help are message ids (English) translated when bindings are
built; `retranslate()` rebuilds them after the language changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

from ftmodel.i18n import t

PANELS = {"loss": "1", "reward": "2", "kl": "3", "lr": "4", "log": "5", "results": "6", "gpu": "7"}


@dataclass(frozen=True)
class Action:
    """One action: where it applies, its keys, what it calls, and how it is described."""

    scope: str  # app, console, text, pick, ask, workbench, config, runs, overlay, sync, ablation, completions, queue
    id: str
    keys: str
    action: str
    label: str
    help: str = ""
    show: bool = True
    key_display: str | None = None
    palette: bool = True  # offered in the command palette (console and app scopes only)

    @property
    def key_text(self) -> str:
        return self.key_display or self.keys.split(",")[0]


A = Action
ACTIONS: tuple[Action, ...] = (
    A("console", "run.start_stage", "s", "start_stage", "Start stage", "Start the selected stage"),
    A("console", "run.start_pipeline", "p", "start_pipeline", "Pipeline", "Start the whole pipeline"),
    A("console", "run.stop", "x", "stop_run", "Stop run", "Stop the selected run gracefully"),
    A(
        "console",
        "run.resume",
        "e",
        "resume_run",
        "Resume run",
        "Resume the selected SFT or GRPO run from its last checkpoint (says where it continues first)",
        show=False,
    ),
    A("console", "nav.stages", "left", "focus_stages", "Stages", "Move to the stage list", show=False),
    A("console", "nav.runs", "right", "focus_runs", "Runs", "Move to the run list", show=False),
    A(
        "console",
        "nav.newer_run",
        "left_square_bracket",
        "cycle_run(-1)",
        "Newer run",
        "Show the next newer run",
        show=False,
        key_display="[",
    ),
    A(
        "console",
        "nav.older_run",
        "right_square_bracket",
        "cycle_run(1)",
        "Older run",
        "Show the next older run",
        show=False,
        key_display="]",
    ),
    *[
        A(
            "console",
            f"panel.{panel}",
            key,
            f"toggle_panel('{panel}')",
            f"Toggle {panel}",
            "Show or hide this panel",
            show=False,
        )
        for panel, key in PANELS.items()
    ],
    A("console", "screen.config", "c", "open_screen('config')", "Config", "Edit the config as a form"),
    A("console", "screen.runs", "r", "open_screen('runs')", "Runs", "Browse, compare, clone and delete runs"),
    A("console", "screen.sync", "w", "open_screen('sync')", "Sync", "Sync offline wandb runs"),
    A(
        "console",
        "screen.ablation",
        "a",
        "open_screen('ablation')",
        "Ablation",
        "Launch an ablation and read its matrix",
    ),
    A(
        "console",
        "screen.completions",
        "g",
        "open_screen('completions')",
        "Completions",
        "Browse GRPO completions and their rewards",
    ),
    A(
        "console",
        "screen.queue",
        "u",
        "open_screen('queue')",
        "Queue",
        "The job queue and sweeps: reorder, remove, pause, retry, compare",
    ),
    A("app", "app.help", "question_mark", "help", "Help", "Show every key", key_display="?"),
    A("app", "app.quit", "q", "quit", "Quit", "Quit; running stages keep running"),
    A("app", "app.language", "f2", "switch_language", "中文/English", "Switch the console's language", show=False),
    A("text", "text.yes", "y", "answer(True)", "Yes", show=False),
    A("text", "text.close", "n,escape,q", "answer(False)", "Close"),
    A("help", "help.close", "escape,question_mark,q", "answer(False)", "Close help"),
    A("pick", "pick.cancel", "escape", "cancel", "Cancel"),
    A("ask", "ask.cancel", "escape", "cancel", "Cancel"),
    A("workbench", "screen.back", "escape", "back", "Back"),
    A("config", "config.save", "ctrl+s", "save", "Save", "Show the diff, then save (comments kept)"),
    A("config", "config.revert", "ctrl+r", "revert", "Revert", "Drop every unsaved edit"),
    A(
        "config",
        "config.editor",
        "ctrl+e",
        "external_editor",
        "$EDITOR",
        "Open the file in $EDITOR; validated on return",
    ),
    A("config", "config.reload", "ctrl+o", "reload", "Reload", "Read the file again from disk"),
    A(
        "config",
        "config.launch",
        "ctrl+l",
        "launch",
        "Launch",
        "Start a stage with the edited config as a one-off run (unsaved edits included)",
    ),
    A(
        "config",
        "config.sweep",
        "ctrl+g",
        "sweep",
        "Sweep",
        "Plan a grid sweep over config keys (the focused field first), confirm, queue it",
    ),
    A("runs", "runs.filter", "slash", "filter_text", "Filter", "Filter by text", key_display="/"),
    A("runs", "runs.stage_filter", "f", "cycle_stage", "Stage filter", "Cycle the stage filter"),
    A("runs", "runs.state_filter", "t", "cycle_state", "State filter", "Cycle the state filter"),
    A("runs", "runs.mark", "space", "mark", "Mark", "Mark or unmark the run (for overlays)"),
    A("runs", "runs.overlay", "o", "overlay", "Overlay", "Overlay the marked runs' curves"),
    A("runs", "runs.clone", "k", "clone", "Clone", "Re-launch the run's stage with one change"),
    A("runs", "runs.delete", "d", "delete", "Delete", "Delete a finished run (asks first)"),
    A("overlay", "overlay.metric", "m", "cycle_metric", "Metric", "Next metric"),
    A("sync", "sync.mark", "space", "mark", "Mark", "Mark or unmark a run"),
    A("sync", "sync.selected", "s", "sync_selected", "Sync", "Sync the marked runs (or the one under the cursor)"),
    A("sync", "sync.all", "a", "sync_all", "Sync all", "Sync every run not yet verified"),
    A("sync", "sync.retry", "f", "retry_failed", "Retry failed", "Sync the runs that failed again"),
    A(
        "sync",
        "sync.stop",
        "x",
        "stop_sync",
        "Stop sync",
        "Stop the running sync (the run in flight is recorded interrupted)",
        show=False,
    ),
    A(
        "sync",
        "sync.pack",
        "b",
        "pack",
        "Pack",
        "Pack the marked runs (or the one under the cursor) into a verified bundle to carry off this box",
    ),
    A(
        "sync",
        "sync.import",
        "i",
        "import_bundle",
        "Import",
        "Verify a bundle file and import its runs, then offer to sync them",
    ),
    A(
        "sync",
        "sync.receipts",
        "r",
        "receipts",
        "Receipts",
        "Show the sync receipts (what reached the server) and import one carried back",
    ),
    A("ablation", "ablation.launch", "l", "launch", "Launch", "Start the ablation with these variants"),
    A("ablation", "ablation.export", "e", "export", "Export .md", "Write the matrix as Markdown"),
    A("ablation", "ablation.judge", "j", "toggle_judge", "Judge", "Judge on or off"),
    A("queue", "queue.up", "shift+up,K", "move(-1)", "Move up", "Move the job up the queue", key_display="K"),
    A("queue", "queue.down", "shift+down,J", "move(1)", "Move down", "Move the job down the queue", key_display="J"),
    A("queue", "queue.remove", "d", "remove", "Remove", "Remove the job (not a running one)"),
    A("queue", "queue.pause", "p", "toggle_pause", "Pause/resume", "Pause the queue (running jobs go on) or resume it"),
    A(
        "queue",
        "queue.retry",
        "f",
        "retry_failed",
        "Retry failed",
        "Queue the failed, cancelled and invalid jobs again",
    ),
    A("queue", "queue.runner", "s", "start_runner", "Start runner", "Start the queue's runner if none runs"),
    A("queue", "queue.sweep", "v", "pick_sweep", "Sweep", "Show a sweep's comparison table"),
    A("queue", "queue.sort", "o", "sort_next", "Sort", "Sort the sweep table by the next column"),
    A("queue", "queue.reverse", "O", "sort_reverse", "Reverse", "Reverse the sweep table's order"),
    A("completions", "completions.filter", "slash", "filter_text", "Filter", "Filter by text", key_display="/"),
    A("completions", "completions.zero", "z", "toggle_zero", "Reward 0", "Only completions with reward 0"),
    A("completions", "completions.qtype", "t", "cycle_qtype", "Qtype", "Cycle the question-type filter"),
)
del A

# Where each workbench is described in the help screen: (title message id, key, scope).
SCREEN_HELP = (
    ("config editor", "c", "config"),
    ("runs browser", "r", "runs"),
    ("sync", "w", "sync"),
    ("ablation", "a", "ablation"),
    ("GRPO completions", "g", "completions"),
    ("queue and sweeps", "u", "queue"),
)


def label(a: Action) -> str:
    """An action's footer label in the current language (panel toggles name their panel)."""
    if a.id.startswith("panel."):
        return t("Toggle {panel}", panel=t(a.id.split(".", 1)[1]))
    return t(a.label)


def scope_actions(scope: str) -> list[Action]:
    return [a for a in ACTIONS if a.scope == scope]


def bindings(scope: str) -> list[Binding]:
    """Textual bindings of one scope, described in the current language."""
    return [
        Binding(
            a.keys,
            a.action,
            label(a),
            show=a.show,
            id=a.id,
            key_display=a.key_display,
            tooltip=t(a.help) if a.help else "",
        )
        for a in scope_actions(scope)
    ]


_bound: dict[type, str] = {}


def bind(scope: str):
    """Class decorator: give a screen or app the bindings of `scope` (and rebuild them on retranslate)."""

    def decorate(cls):
        _bound[cls] = scope
        _install(cls, scope)
        return cls

    return decorate


def _install(cls, scope: str) -> None:
    cls.BINDINGS = bindings(scope)
    # Textual merges a class's bindings once, when the class is created; refresh that cache.
    cls._merged_bindings = cls._merge_bindings()


def retranslate(live_nodes=()) -> None:
    """Rebuild every bound class's bindings in the current language (their subclasses too: Textual
    merges inherited bindings per class), and the binding maps of live nodes (the app, open screens)."""
    for cls in list(_bound):
        _install(cls, _bound[cls])
    seen, todo = set(), list(_bound)
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen and sub not in _bound:
                seen.add(sub)
                sub._merged_bindings = sub._merge_bindings()
            todo.append(sub)
    for node in live_nodes:
        node._bindings = type(node)._merged_bindings.copy()


def help_line(a: Action) -> str:
    """One line of the help screen: key, label and what it does (key column in terminal cells)."""
    from tui.cells import pad

    text = label(a) + (" — " + t(a.help) if a.help else "")
    return f"  {pad(a.key_text, 12)} {text}"


def help_text() -> str:
    """The help screen's text, built from the action table."""
    from tui.cells import pad

    lines = [t("ftmodel-tui — keys"), ""]
    lines.append(f"  {pad('up/down', 12)} {t('move in the focused list (stages or runs)')}")
    lines.append(f"  {pad('tab', 12)} {t('switch focus between stages and runs')}")
    lines += [help_line(a) for a in (*scope_actions("console"), *scope_actions("app"))]
    lines.append(f"  {pad('ctrl+p', 12)} {t('command palette (every action)')}")
    for title, key, scope in SCREEN_HELP:
        lines += ["", f"{t(title)} ({key})"]
        lines += [help_line(a) for a in (*scope_actions(scope), *scope_actions("workbench"))]
    lines += [
        "",
        t("Stages run detached: quitting, closing tmux or losing SSH leaves them"),
        t("running. Reopen the console to re-attach; a run whose process died shows"),
        t("as lost. Panels 1-4 appear once the run has logged those metrics."),
    ]
    return "\n".join(lines)


def palette_entries() -> list[tuple[str, str, Action]]:
    """(title, help, action) for the command palette: every console and app action."""
    out = []
    for a in (*scope_actions("console"), *scope_actions("app")):
        if a.palette:
            out.append((label(a), f"{t(a.help) if a.help else label(a)} ({a.key_text})", a))
    return out
