"""Fixtures shared by the console's Pilot tests."""

import pytest


@pytest.fixture
def anyio_backend():
    """Pilot tests run on asyncio (anyio's pytest plugin ships with Textual's dependencies)."""
    return "asyncio"


@pytest.fixture
def ws(tmp_path):
    """A workspace path inside the test's temporary directory."""
    return tmp_path / "ws"


@pytest.fixture(autouse=True)
def english_by_default(monkeypatch):
    """Tests see the English console unless they ask for another language; none leaks into the next."""
    monkeypatch.setenv("FTMODEL_LANG", "en")
    yield
    from ftmodel.i18n import set_language
    from tui import actions

    set_language("en")
    actions.retranslate()
