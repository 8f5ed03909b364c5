"""Background work that cannot take the console down: every thread worker of tui/ is declared with
`background`, and a failure in one becomes a `WorkerFailed` message.

Textual ends the whole app when a worker raises (its default `exit_on_error`): a run directory
with a surprise in it would close the console. Here the worker's own thread writes the traceback to
`<workspace>/console.log` and posts `WorkerFailed` to the widget or screen that started it (which
may react: say "failed" where it said "reading…"); it bubbles to the app, which tells the user what
failed and why, and starts a polling worker again after a pause, so the console keeps following
runs after a transient error.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import work
from textual.message import Message

# worker name -> message id saying what it does, in words a user reads ("following the runs")
WORKER_WHAT: dict[str, str] = {}

CONSOLE_LOG = "console.log"  # in the workspace: the traceback of every worker failure
CONSOLE_LOG_MAX_BYTES = 1 << 20  # then it is moved to console.log.1 and started again
_log_lock = threading.Lock()


@dataclass(eq=False)
class WorkerFailed(Message):
    """A worker raised: what it was doing (a message id), the error, where the traceback went, and
    how to start it again (a polling worker) after `restart_after` seconds."""

    name: str
    what: str
    error: str
    log: Path | None = None
    owner: Any = None  # the widget, screen or app that started the worker
    restart: Callable[[], Any] | None = None
    restart_after: float = 0.0


def background(
    name: str,
    what: str,
    *,
    group: str | None = None,
    exclusive: bool = False,
    restart_after: float | None = None,
    skip_if_running: bool = False,
):
    """Run the decorated method in a thread worker whose failure is reported instead of fatal.

    `what` is a message id saying what the worker does ("reading the queue"); `restart_after`, for a
    worker that polls forever, is how many seconds after a failure it is started again;
    `skip_if_running`, for a read a timer asks for again and again, makes a call while the last one
    still runs do nothing (a thread cannot be cancelled: a slow scheduler would pile them up).
    """
    WORKER_WHAT[name] = what

    def decorate(method):
        @functools.wraps(method)
        def guarded(node, *args, **kwargs):
            try:
                return method(node, *args, **kwargs)
            except Exception as error:
                again = functools.partial(getattr(node, method.__name__), *args, **kwargs) if restart_after else None
                report_failure(node, name, error, again, restart_after or 0.0)
                raise  # the worker ends in the ERROR state; exit_on_error=False keeps the app up

        start = work(thread=True, exclusive=exclusive, group=group or name, name=name, exit_on_error=False)(guarded)
        if not skip_if_running:
            return start

        @functools.wraps(method)
        def start_unless_running(node, *args, **kwargs):
            if any(w.node is node and w.name == name and not w.is_finished for w in node.app.workers):
                return None
            return start(node, *args, **kwargs)

        return start_unless_running

    return decorate


def report_failure(node, name: str, error: BaseException, restart=None, restart_after: float = 0.0) -> None:
    """Log a worker's traceback and post WorkerFailed (from the worker's thread: post_message is safe there)."""
    app = node.app
    log = write_traceback(getattr(app, "workspace", None), name, error)
    message = WorkerFailed(name, WORKER_WHAT.get(name, name), describe(error), log, node, restart, restart_after)
    if node is app or not node.is_attached or not node.post_message(message):
        app.post_message(message)  # the screen that asked is gone: the app still says what failed


def describe(error: BaseException) -> str:
    """An exception in one line: its type and its message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text and text[0] else type(error).__name__


def write_traceback(workspace: Path | None, name: str, error: BaseException) -> Path | None:
    """Append a worker's traceback to `<workspace>/console.log`; return the file (None: not writable)."""
    if workspace is None:
        return None
    path = Path(workspace) / CONSOLE_LOG
    text = "".join(traceback.format_exception(error))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        with _log_lock:
            if path.exists() and path.stat().st_size > CONSOLE_LOG_MAX_BYTES:
                os.replace(path, path.with_name(CONSOLE_LOG + ".1"))
            with open(path, "a", encoding="utf-8", errors="backslashreplace") as fh:
                fh.write(f"{stamp} worker {name} (pid {os.getpid()}) failed:\n{text}\n")
    except OSError:
        return None
    return path
