"""One error hierarchy: every exception class defined in ftmodel/ and tui/ derives from FtmodelError,
except the ones listed here with the reason; there is one `Cancelled`, and it is no `Exception`."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

from ftmodel import errors

ROOT = Path(__file__).resolve().parents[2]
BUILTIN_EXCEPTIONS = {
    name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
}
OUTSIDE = {
    # name: why it is not an FtmodelError
    "Cancelled": "a stop request, not an error: a BaseException so no `except Exception` swallows it",
    "_Retry": "llm.py's private control flow: a failure worth another attempt, caught inside OpenAIChatClient",
    "_Fallback": "llm.py's private control flow: ask again without streaming, caught inside OpenAIChatClient",
}


def exception_classes() -> dict[str, tuple[str, list[str]]]:
    """Every class in ftmodel/ and tui/ whose bases lead to a builtin exception: name -> (where, bases)."""
    classes: dict[str, list[tuple[str, list[str]]]] = {}
    for path in sorted((*(ROOT / "ftmodel").rglob("*.py"), *(ROOT / "tui").rglob("*.py"))):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "?") for b in node.bases]
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                classes.setdefault(node.name, []).append((where, bases))
    found: dict[str, tuple[str, list[str]]] = {}
    grew = True
    while grew:
        grew = False
        for name, defs in classes.items():
            for where, bases in defs:
                if name not in found and any(b in BUILTIN_EXCEPTIONS or b in found for b in bases):
                    found[name] = (where, bases)
                    grew = True
    duplicates = {n: [w for w, _ in classes[n]] for n in found if len(classes[n]) > 1}
    assert not duplicates, f"one name, several exception classes: {duplicates}"
    return found


def derives_from(name: str, base: str, found: dict) -> bool:
    seen = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current == base:
            return True
        if current in seen or current not in found:
            continue
        seen.add(current)
        todo.extend(found[current][1])
    return False


def test_every_exception_class_derives_from_ftmodel_error():
    found = exception_classes()
    assert len(found) > 30  # the walk finds the engine's classes (HTTP client, launcher, bundle…)
    outside = {
        name: where
        for name, (where, _) in found.items()
        if name != "FtmodelError" and name not in OUTSIDE and not derives_from(name, "FtmodelError", found)
    }
    assert not outside, f"exception classes outside the FtmodelError tree: {outside}"
    for name in OUTSIDE:  # the list names only classes that exist and really are outside
        assert name in found and not derives_from(name, "FtmodelError", found), name


def test_one_cancelled_for_a_stop_request_and_an_aborted_request():
    from ftmodel import context, http_client, worker

    assert context.Cancelled is http_client.Cancelled is worker.Cancelled is errors.Cancelled
    assert not issubclass(errors.Cancelled, Exception)
    assert http_client.Cancelled("x: cancelled", "http://h/").url == "http://h/"


@pytest.mark.parametrize(
    "module,name,also",
    [
        ("ftmodel.context", "StageError", RuntimeError),
        ("ftmodel.launcher", "LaunchError", RuntimeError),
        ("ftmodel.backends", "BackendError", RuntimeError),
        ("ftmodel.llm", "LLMError", RuntimeError),
        ("ftmodel.workspace", "OutputBusy", RuntimeError),
        ("ftmodel.rundir", "BrokenRun", LookupError),
        ("ftmodel.http_transport", "ProxyUnsupported", ValueError),
        ("ftmodel.errors", "ConfigError", ValueError),
        ("ftmodel.http_client", "ProxyFailed", Exception),
        ("tui.configdoc", "ConfigChangedOnDisk", Exception),
    ],
)
def test_classes_keep_the_builtin_base_their_callers_catch(module, name, also):
    import importlib

    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, errors.FtmodelError) and issubclass(cls, also)
