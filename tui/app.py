"""ftmodel-tui: launch stages and watch loss, reward and KL live from run directories.

Stages run detached, so closing the console, killing tmux or losing SSH leaves them running;
opening the console again re-attaches purely from `<workspace>/runs/*`. The app owns what outlives
a screen: starting and stopping runs, the sync worker, quitting, the language; screens ask for
that work with messages (tui.messages) and the main console is a screen of its own.
A little over 400 lines: the app-wide work (launch, stop, sync, pack, reaping launched jobs), what
reaches the terminal from it (notifications, a failed worker told) and the entry point share its state.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from textual.app import App, SystemCommand

from ftmodel import config as config_mod
from ftmodel.arguments import Parser
from ftmodel.i18n import language, set_language, t
from ftmodel.profiles import resolve_config
from ftmodel.textio import printable
from tui import actions
from tui.messages import (
    BundlePacked,
    LaunchDone,
    LaunchRequested,
    PackRequested,
    StopDone,
    StopRequested,
    SyncFinished,
    SyncProgress,
    SyncRequested,
    SyncRunDone,
)
from tui.plain import toast_text
from tui.screens.console import STAGE_ITEMS, ConsoleScreen  # noqa: F401 - STAGE_ITEMS: tests read it here
from tui.workers import WorkerFailed, background

# The same failure of the same worker is told once a minute, not at every restart of a poll.
FAILURE_REPEAT_SECONDS = 60.0


@dataclass
class SyncState:
    """What the app's sync worker is doing, readable by the sync screen."""

    env: dict | None = None  # environment for `wandb sync` (None: this process's); tests use a fake server
    busy: str | None = None  # what is being synced (None: idle)
    messages: dict[str, str] = field(default_factory=dict)  # the latest progress line per offline run
    # offline run key -> (its latest sync Result, when it arrived): busy and interrupted live only here
    results: dict = field(default_factory=dict)
    cancel: threading.Event | None = None  # set to stop the running sync (the engine stops the client)
    packing: str | None = None  # the bundle file being packed (None: idle)


@actions.bind("app")
class FtmodelConsole(App[None]):
    """The ftmodel console: the main console screen, workbenches over it, and the app-wide work."""

    TITLE = "ftmodel"
    # The main console's and the dialogs' styles; each workbench screen loads its own when opened.
    CSS_PATH = ["styles/console.tcss", "styles/dialogs.tcss"]

    def __init__(
        self,
        cfg,
        config_path: str,
        workspace: Path,
        *,
        watch_terminal: bool | None = None,
        gpu: bool | None = None,
        lang: str | None = None,
    ):
        # --lang, else the config's [ui] language (`auto`: the environment decides).
        set_language(lang or getattr(getattr(cfg, "ui", None), "language", None))
        actions.retranslate()
        super().__init__()
        self.cfg = cfg
        self.config_path = config_path
        self.workspace = Path(workspace)
        self.main = ConsoleScreen(self.workspace, gpu=gpu)
        self._watch_terminal = watch_terminal
        self.quit_message: str | None = None
        # Popen (or Slurm) handles kept only so finished children get reaped, never read; the launch
        # worker adds to it and the reap worker takes from it, each in its own thread.
        self._launched = []
        self._launched_lock = threading.Lock()
        self._failures_told: dict[tuple[str, str], float] = {}
        self.sync = SyncState()

    @property
    def runs(self):
        """Every run of the workspace as last scanned by the main console (oldest first)."""
        return self.main.runs

    def get_default_screen(self) -> ConsoleScreen:
        return self.main

    def on_mount(self) -> None:
        watch = self._watch_terminal
        if watch is None:
            watch = not self.is_headless and sys.stdin.isatty()
        if watch:
            # A vanished terminal must end the console, not leave it spinning at 100% CPU.
            self.set_interval(1.0, self._check_terminal)
            try:
                signal.signal(signal.SIGHUP, self._on_sighup)
            except ValueError:
                pass  # not the main thread (embedded use): the isatty timer still covers it
        self.set_interval(2.0, self._reap_if_launched)
        if not gc.isenabled():  # tui/__main__.py paused the collector for the start: resume it after the first frame
            self.call_after_refresh(_resume_gc)

    # ---------------------------------------------------------------- what reaches the terminal

    def notify(self, message, *, title: str = "", severity="information", timeout=None, markup: bool = False) -> None:
        """Show a notification. Its text may quote a run's files, a server's reply or an exception:
        never read as markup, control characters shown (`markup` is accepted and ignored), wrapped by
        cells for the toast (`tui.plain.toast_text`)."""
        super().notify(
            toast_text(message, self.size.width),
            title=printable(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    def on_worker_failed(self, message: WorkerFailed) -> None:
        """A worker raised (tui.workers): say what failed and why, and start a polling worker again."""
        if message.name == "sync-runs":  # the app's own work: its state must not say "busy" forever
            self.sync.busy, self.sync.cancel = None, None
        elif message.name == "pack-bundle":
            self.sync.packing = None
        key, now = (message.name, message.error), time.monotonic()
        if now - self._failures_told.get(key, -FAILURE_REPEAT_SECONDS) >= FAILURE_REPEAT_SECONDS:
            self._failures_told[key] = now
            lines = [message.error]
            if message.restart is not None:
                lines.append(t("it starts again in {seconds}s", seconds=f"{message.restart_after:g}"))
            if message.log is not None:
                lines.append(t("the console goes on; the traceback is in {path}", path=message.log))
            else:
                lines.append(t("the console goes on"))
            self.notify("\n".join(lines), title=t("{what} failed", what=t(message.what)), severity="error", timeout=15)
        if message.restart is not None:
            owner, restart = message.owner, message.restart

            def again() -> None:
                if owner is self or getattr(owner, "is_attached", False):
                    restart()

            self.set_timer(message.restart_after, again)

    # ---------------------------------------------------------------- terminal watch

    def _check_terminal(self) -> None:
        try:
            alive = sys.stdin.isatty() and os.isatty(sys.__stdout__.fileno())
        except (ValueError, OSError):
            alive = False
        if not alive:
            self._hard_exit_soon()
            self.exit(return_code=129)

    def _on_sighup(self, signum, frame) -> None:
        self._hard_exit_soon()
        self.call_later(self.exit, None, 129)

    def _hard_exit_soon(self) -> None:
        # Restoring a terminal that no longer exists can block; the runs live on regardless.
        timer = threading.Timer(3.0, os._exit, args=(129,))
        timer.daemon = True
        timer.start()

    def _reap_if_launched(self) -> None:
        with self._launched_lock:
            launched = bool(self._launched)
        if launched:
            self._reap()

    @background("reap-launched", "checking the runs this console started", skip_if_running=True)
    def _reap(self) -> None:
        """Reap finished children so they do not linger as zombies. In a worker: a Slurm handle's
        poll() asks squeue and scontrol, which may take seconds on a busy scheduler."""
        with self._launched_lock:
            handles = list(self._launched)
        done = [proc for proc in handles if proc.poll() is not None]
        with self._launched_lock:
            self._launched = [proc for proc in self._launched if proc not in done]

    # ---------------------------------------------------------------- app-wide work asked for by screens

    def on_launch_requested(self, message: LaunchRequested) -> None:
        self._launch(message.stage, message.cfg, message.args, message.argv)

    @background("start-stage", "starting a stage", group="launch")
    def _launch(self, stage: str, cfg, args: dict, argv: list[str]) -> None:
        """Preflight and start a stage (or the pipeline) detached; report how it went.

        No `cfg`: the config file is read again, so edits made since the console opened apply.
        """
        from ftmodel.context import StageError
        from ftmodel.launcher import LaunchError, start_stage

        try:
            if cfg is None:
                cfg = config_mod.load(self.config_path)
            run, proc = start_stage(stage, cfg, self.workspace, args, argv=argv)
        except (StageError, LaunchError, config_mod.ConfigError, OSError, LookupError) as e:
            self.post_message(LaunchDone(stage, None, str(e)))
            return
        with self._launched_lock:
            self._launched.append(proc)
        self.post_message(LaunchDone(stage, run.id, None))

    def on_launch_done(self, message: LaunchDone) -> None:
        if message.error:
            self.notify(
                message.error, title=t("cannot start {stage}", stage=message.stage), severity="error", timeout=10
            )
            return
        self.notify(
            t("{stage}: run {run} started (it keeps running if you quit)", stage=message.stage, run=message.run_id),
            title=t("started"),
        )
        self.main.follow(message.run_id)

    def on_stop_requested(self, message: StopRequested) -> None:
        self._stop(message.run_id)

    @background("stop-run", "stopping a run", group="stop")
    def _stop(self, run_id: str) -> None:
        """Stop a run (SIGINT, then SIGTERM, then SIGKILL; may take a minute)."""
        from ftmodel.launcher import LaunchError, stop
        from ftmodel.rundir import find_run

        try:
            status = stop(find_run(self.workspace, run_id))
        except (LaunchError, LookupError, OSError) as e:
            self.post_message(StopDone(run_id, None, str(e)))
            return
        self.post_message(StopDone(run_id, status, None))

    def on_stop_done(self, message: StopDone) -> None:
        if message.error:
            self.notify(message.error, title=t("cannot stop {run}", run=message.run_id), severity="error", timeout=10)
        else:
            self.notify(f"{message.run_id}: {t(message.status)}", title=t("stopped"))
        self.main.wake()

    def on_sync_requested(self, message: SyncRequested) -> None:
        if self.sync.busy:
            return
        self.sync.busy = t("{n} run(s)", n=len(message.runs))
        self.sync.cancel = threading.Event()
        self._sync(message.runs, self.sync.cancel)

    @background("sync-runs", "syncing runs to W&B", group="sync", exclusive=True)
    def _sync(self, runs: list, cancel: threading.Event) -> None:
        """Upload and verify offline runs; progress and each final outcome are posted as messages.
        Like `ftmodel sync`, a receipt of what reached the server is written (to carry back to the box)."""
        from ftmodel import receipts
        from ftmodel.sync import SyncError, read_ledger, sync_runs

        try:
            results = sync_runs(
                self.workspace,
                runs,
                env=self.sync.env,
                cancel=cancel,
                progress_cb=lambda key, text: self.post_message(SyncProgress(key, text)),
                result_cb=lambda result: self.post_message(SyncRunDone(result)),
            )
            receipt = receipts.write_receipt(self.workspace, [r.key for r in results], read_ledger(self.workspace))
        except (SyncError, OSError) as e:
            self.post_message(SyncFinished([], str(e)))
            return
        self.post_message(SyncFinished(results, None, receipt))

    def _to_sync_screen(self, message) -> None:
        from tui.screens.sync import SyncScreen

        for screen in self.screen_stack:
            if isinstance(screen, SyncScreen):
                screen.post_message(message)

    def on_sync_progress(self, message: SyncProgress) -> None:
        self.sync.messages[message.key] = message.text
        self._to_sync_screen(SyncProgress(message.key, message.text))

    def on_sync_run_done(self, message: SyncRunDone) -> None:
        self.sync.results[message.result.key] = (message.result, time.time())
        self._to_sync_screen(SyncRunDone(message.result))

    def on_sync_finished(self, message: SyncFinished) -> None:
        self.sync.busy, self.sync.cancel = None, None
        if message.error:
            self.notify(message.error, title=t("sync failed"), severity="error", timeout=10)
        else:
            self.notify(
                sync_summary(message.results, message.receipt),
                title=t("sync done"),
                severity="error"
                if any(r.state in ("failed", "busy") for r in message.results)
                else "warning"
                if any(r.state in ("partial", "interrupted") for r in message.results)
                else "information",
                timeout=10,
            )
        self._to_sync_screen(SyncFinished(message.results, message.error, message.receipt))

    def on_pack_requested(self, message: PackRequested) -> None:
        if self.sync.packing:
            self.notify(t("a bundle is already being packed: {path}", path=self.sync.packing), severity="warning")
            return
        self.sync.packing = str(message.out)
        self._pack(message.plan, message.out, message.new_only)

    @background("pack-bundle", "packing a bundle", group="bundle", exclusive=True)
    def _pack(self, plan, out: Path, new_only: bool) -> None:
        """Pack a planned bundle (written to `out.part`, renamed when whole); the app's, so leaving
        the sync screen does not lose the outcome."""
        from ftmodel import bundle

        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            info = bundle.make_bundle(self.workspace, out, plan=plan, new_only=new_only)
        except (bundle.BundleError, OSError) as e:
            self.post_message(BundlePacked(None, out, str(e)))
            return
        self.post_message(BundlePacked(info, out, None))

    def on_bundle_packed(self, message: BundlePacked) -> None:
        from ftmodel.bundle import human_size

        self.sync.packing = None
        info = message.info
        if message.error:
            self.notify(
                message.error, title=t("no bundle written to {path}", path=message.out), severity="error", timeout=10
            )
        else:
            self.notify(
                t(
                    "{path}: {runs} run(s), {files} file(s), {size_in} packed into {size_out} in {seconds}s",
                    path=info.path,
                    runs=len(info.runs),
                    files=info.files,
                    size_in=human_size(info.bytes_in),
                    size_out=human_size(info.bytes_out),
                    seconds=f"{info.seconds:.2f}",
                ),
                title=t("bundle written"),
                timeout=15,
            )
        self._to_sync_screen(BundlePacked(info, message.out, message.error))

    # ---------------------------------------------------------------- app actions

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Quit only from the main console (a workbench's q means something else or nothing)."""
        if action == "quit" and self.screen is not self.main:
            return None
        return True

    def action_help(self) -> None:
        """Show every key and what it does."""
        from tui.dialogs import HelpScreen  # warmed after the first frame (ConsoleWorkers._warm_up)

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_text()))

    def help_text(self) -> str:
        """The help screen's text: every action of the action table."""
        return actions.help_text()

    async def action_quit(self) -> None:
        """Quit the console; runs in progress keep running (it says which)."""
        active = [r for r in self.main.runs if r.active]
        message = None
        if active:
            ids = ", ".join(r.id for r in active[:3]) + (" …" if len(active) > 3 else "")
            message = t(
                "ftmodel-tui: {n} run(s) keep running in the background: {ids}\n"
                "reopen the console to watch them; `ftmodel stop RUN --workspace {workspace}` stops one",
                n=len(active),
                ids=ids,
                workspace=self.workspace,
            )
        self.quit_message = message
        self.exit(message=message)

    def action_switch_language(self, lang: str | None = None) -> None:
        """Switch between Chinese and English: keys, footer and help now; screen texts as they refresh."""
        set_language(lang or ("en" if language() == "zh" else "zh"))
        actions.retranslate([self, *self.screen_stack])
        self.refresh_bindings()
        self.main.relabel()
        self.notify(t("language: English"), timeout=3)

    def get_system_commands(self, screen):
        """Offer every action of the action table in the command palette, and the language switch."""
        yield from super().get_system_commands(screen)
        for title, help_text, action in actions.palette_entries():
            target = self if action.scope == "app" else self.main
            yield SystemCommand(title, help_text, partial(target.run_action, action.action))
        for lang, name in (("zh", "中文"), ("en", "English")):
            yield SystemCommand(
                t("Language: {name}", name=name),
                t("Show the console in {name}", name=name),
                partial(self.action_switch_language, lang),
            )


def sync_summary(results: list, receipt: Path | None = None) -> str:
    """The "sync done" line: how many runs were verified, failed, not whole, busy elsewhere, interrupted."""
    count = {s: sum(r.state == s for r in results) for s in ("synced", "failed", "partial", "busy", "interrupted")}
    text = t("{ok} synced and verified, {bad} failed", ok=count["synced"], bad=count["failed"])
    if count["partial"]:
        text += ", " + t("{n} synced, not whole", n=count["partial"])
    if count["busy"]:
        text += ", " + t("{n} being synced elsewhere", n=count["busy"])
    if count["interrupted"]:
        text += ", " + t("{n} interrupted", n=count["interrupted"])
    if receipt:
        text += "\n" + t("receipt: {path}", path=receipt)
    return text


DESCRIPTION = "ftmodel-tui: launch stages and watch loss, reward and KL live from run directories."


def build_parser() -> argparse.ArgumentParser:
    """Build the `ftmodel-tui` argument parser (its help in the user's language: ftmodel.arguments)."""
    p = Parser(prog="ftmodel-tui", description=DESCRIPTION)
    p.add_argument(
        "--config",
        default=None,
        help="TOML config (default: ./ftmodel.toml, else ./configs/default.toml, else the packaged default)",
    )
    p.add_argument("--workspace", help="workspace directory (default: launch.workspace from the config)")
    p.add_argument("--no-mouse", action="store_true", help="do not capture the mouse (keys do everything)")
    p.add_argument(
        "--lang",
        choices=("en", "zh"),
        help="interface language (default: FTMODEL_LANG, else zh when LANG/LC_ALL is Chinese, else en)",
    )
    return p


def _resume_gc() -> None:
    """Turn the garbage collector back on; what the start made stays, so leave it out of later collections."""
    gc.freeze()
    gc.enable()


def main(argv: list[str] | None = None) -> int:
    """Run the console. `ftmodel-tui` (tui/__main__.py) pauses the garbage collector before its first
    import; the app turns it back on once the first frame is painted (on_mount: `_resume_gc`)."""
    set_language()  # --help and argument errors in the environment's language; --lang decides below
    ns = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    set_language(ns.lang)
    choice = resolve_config(ns.config)  # the same rule as the `ftmodel` CLI, so both see one workspace
    try:
        cfg = config_mod.load(choice.path)
    except config_mod.ConfigError as e:
        print(t("error: {message}", message=e), file=sys.stderr)
        return 2
    workspace = Path(ns.workspace or cfg.launch.workspace)
    app = FtmodelConsole(cfg, str(choice.path), workspace, lang=ns.lang)
    app.run(mouse=not ns.no_mouse)
    return app.return_code or 0


if __name__ == "__main__":  # `python -m tui` is the entry point's start (the collector paused from the first import)
    sys.exit(main())
