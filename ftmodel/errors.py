"""The engine's error types, in one place: each is already phrased for the user (it names the
file, line, key or run), so the CLI and the console print it as it is, without a traceback."""

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
