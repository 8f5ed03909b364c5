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
