"""Which W&B server and key a sync uses: the ones wandb itself would use (asked of wandb), after a
real `wandb login --host URL` (settings file + netrc, no WANDB_* variables) `ftmodel sync` reaches
that server and verifies, and a key configured for one server never reaches another."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftmodel import sync
from ftmodel.errors import SyncError
from ftmodel.wandb_server import resolve_credentials
from tests.conftest import ROOT
from tests.engine.test_sync import FAST, make_offline_run
from tests.fake_wandb import FakeWandb

KEY_A, KEY_B = "a" * 40, "b" * 40


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user whose HOME is `home`, with no WANDB_* variable and no NETRC."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "NETRC"}
    return {**env, "HOME": str(home), "FTMODEL_LANG": "en", **extra}


def wandb_login(home: Path, url: str, key: str) -> None:
    """The real `wandb login --host URL KEY`: writes HOME's wandb settings and netrc."""
    done = subprocess.run(
        [*sync.wandb_command(), "login", "--host", url, key],
        env=bare_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (home / ".netrc").is_file() and url in (home / ".config" / "wandb" / "settings").read_text()


def ftmodel_sync(ws: Path, home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ftmodel", "sync", *args, "--workspace", str(ws)],
        env={**bare_env(home, **FAST, **extra), "PYTHONPATH": str(ROOT)},
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_after_wandb_login_host_sync_reaches_that_server_and_no_other(tmp_path):
    ws, home = tmp_path / "ws", tmp_path / "home"
    home.mkdir()
    make_offline_run(ws, "sft-20260101-000000-aaaa", steps=3)
    with FakeWandb(api_key=KEY_A) as a, FakeWandb() as b:  # b takes any key and records it
        wandb_login(home, a.url, KEY_A)
        # The workspace's private wandb settings name another server and key: they must not win.
        (ws / ".wandb" / "config").mkdir(parents=True, exist_ok=True)
        (ws / ".wandb" / "config" / "settings").write_text(f"[default]\nbase_url = {b.url}\napi_key = {KEY_B}\n")
        done = ftmodel_sync(ws, home, "--all")
        out = done.stdout + done.stderr
        assert done.returncode == 0, out
        assert "1 of 1 run(s) synced and verified" in out and KEY_A not in out
        (run,) = sync.list_offline_runs(ws)
        assert a.run(run.wandb_id).history_line_count == 3 and sync.read_ledger(ws)[run.key]["server"] == a.url
        assert a.keys_seen() == {KEY_A} and b.requests == []
        # The user points at another server; the key in netrc is a's: nothing is sent anywhere.
        seen = len(a.requests)
        run_b = make_offline_run(ws, "sft-20260101-000100-bbbb", steps=2, artifact=False)
        done = ftmodel_sync(ws, home, "sft-20260101-000100-bbbb", WANDB_BASE_URL=b.url)
        assert done.returncode == 1 and f"no W&B API key for {b.url}" in done.stdout + done.stderr
        assert b.requests == [] and len(a.requests) == seen
        assert run_b.is_dir()


def test_the_lookup_is_wandbs_own(tmp_path):
    """Asked of wandb in the user's environment: its default server, the host check on a settings
    key, the `~/_netrc` fallback, WANDB_API_KEY; the key is only ever one for the named server."""
    from wandb.sdk.lib.urls import DEFAULT_BASE_URL

    home = tmp_path / "home"
    (home / ".config" / "wandb").mkdir(parents=True)
    with pytest.raises(SyncError, match=f"no W&B API key for {DEFAULT_BASE_URL}"):
        resolve_credentials(bare_env(home), cwd=tmp_path)  # nothing configured: wandb's default server
    url_a, url_b = "http://127.0.0.1:9", "http://127.0.0.1:10"
    (home / ".config" / "wandb" / "settings").write_text(f"[default]\nbase_url = {url_a}\napi_key = {KEY_A}\n")
    creds = resolve_credentials(bare_env(home), cwd=tmp_path)
    assert (creds.base_url, creds.api_key) == (url_a, KEY_A) and KEY_A not in repr(creds)
    # wandb itself would send a's settings key to b: refused by name.
    with pytest.raises(SyncError, match=f"api_key in wandb's settings .* was saved for {url_a}, not for {url_b}"):
        resolve_credentials(bare_env(home, WANDB_BASE_URL=url_b), cwd=tmp_path)
    (home / "_netrc").write_text(f"machine 127.0.0.1:10\n  login user\n  password {KEY_B}\n")
    (home / "_netrc").chmod(0o600)
    creds = resolve_credentials(bare_env(home, WANDB_BASE_URL=url_b), cwd=tmp_path)
    assert (creds.base_url, creds.api_key) == (url_b, KEY_B)  # no ~/.netrc: wandb reads ~/_netrc
    creds = resolve_credentials(bare_env(home, WANDB_API_KEY="k" * 40), cwd=tmp_path)
    assert (creds.base_url, creds.api_key) == (url_a, "k" * 40)
    assert creds.client_environment() == {"WANDB_BASE_URL": url_a, "WANDB_API_KEY": "k" * 40}


def identity_token(folder: Path) -> Path:
    """A JWT in a file, as a CI system's OIDC provider writes it (the fake server takes any)."""
    import base64
    import json
    import time

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"iss": "https://idp.example", "sub": "ci", "aud": "wandb", "iat": int(time.time())}
    path = folder / "identity.jwt"
    path.write_text(f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part({**claims, 'exp': claims['iat'] + 3600})}.c2ln")
    return path


def test_an_identity_token_is_exchanged_as_wandb_does_and_the_run_verifies(tmp_path):
    """WANDB_IDENTITY_TOKEN_FILE (federated identity) instead of a key: wandb's client and our
    checks both use the access token the server issued for it; no key is involved anywhere."""
    ws, home = tmp_path / "ws", tmp_path / "home"
    home.mkdir()
    make_offline_run(ws, "sft-20260101-000000-aaaa", steps=3, artifact=False)
    token = identity_token(tmp_path)
    with FakeWandb(api_key=KEY_A) as server:
        env = bare_env(home, WANDB_BASE_URL=server.url, WANDB_IDENTITY_TOKEN_FILE=str(token), **FAST)
        (res,) = sync.sync_runs(ws, env=env, cwd=tmp_path, timeout=120)
        assert res.state == "synced", res.reason
        assert {r["op"] for r in server.requests} >= {"oidc_token", "FtmodelVerifyRun", "UpsertBucket"}
        assert server.keys_seen() <= {f"Bearer {t}" for t in server.access_tokens.values()}
    assert not (home / ".config").exists() and not (home / ".cache").exists()  # wandb wrote in the workspace
