"""The engine's error types: one hierarchy under `FtmodelError`.

Every exception a user can meet derives from `FtmodelError`, so the CLI and the console catch one
class and print its message as it is, one line, without a traceback (each message already names the
file, line, key or run, in the user's language). Errors whose module is their natural home (the HTTP
client's, the launcher's, the bundle's…) are defined there, on `FtmodelError`; the base classes and
those several layers raise live here. A class keeps a secondary builtin base where callers catch it
by that (`ConfigError` is a `ValueError`, `BrokenRun` a `LookupError`, `StageError` a `RuntimeError`).

The one exception outside the tree is `Cancelled`: a stop request, not an error. It derives from
`BaseException` (as `KeyboardInterrupt` does) so that no `except Exception` in a trainer, a callback
or a library swallows it on its way up to the code that asked for the stop. `tests/engine/
test_errors.py` walks every class in `ftmodel/` and `tui/` and holds this.
"""

from __future__ import annotations


class FtmodelError(Exception):
    """Base of every error the engine reports to a user."""


class ConfigError(FtmodelError, ValueError):
    """A config problem, already phrased for the user (file, line and key path)."""


class DataError(FtmodelError, ValueError):
    """A data file is missing or malformed; the message names the file, the line and the problem."""


class SyncError(FtmodelError):
    """A problem that stops a sync before anything is sent (no key, no server URL…)."""


class ServerError(FtmodelError):
    """The server could not be asked (unreachable, timed out, HTTP error, GraphQL error)."""


class Cancelled(BaseException):
    """A stop was requested: a stage saves what it can and records `cancelled`; an HTTP request under
    way is aborted (`http_client.Cancel`). Not an error and deliberately not an `Exception` (see the
    module's docstring). `url` names the request that was aborted, if any."""

    def __init__(self, message: str = "cancelled", url: str = ""):
        super().__init__(message)
        self.url = url
