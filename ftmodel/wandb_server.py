"""Talking to the W&B server ourselves: where it is, which key is ours, and one small GraphQL
client (through ftmodel.http_client, so a key never follows a redirect to another host and every
query has a deadline) that asks what the server holds of a run. Stdlib only."""

from __future__ import annotations

import base64
import configparser
import contextlib
import json
import netrc
import os
from pathlib import Path
from urllib.parse import urlsplit

from ftmodel import http_client as http
from ftmodel.errors import ServerError, SyncError

USER_AGENT = "ftmodel-sync/1"
QUERY_TIMEOUT = 20.0  # our own GraphQL requests, seconds

VERIFY_QUERY = """
query FtmodelVerifyRun($entity: String, $project: String!, $run: String!) {
  project(name: $project, entityName: $entity) {
    run(name: $run) {
      id
      name
      displayName
      state
      historyLineCount
      historyKeys
      summaryMetrics
      config
      project { name entity { name } }
      outputArtifacts(first: 100) {
        totalCount
        edges { node { id digest state versionIndex artifactType { name } artifactSequence { name } } }
      }
    }
  }
}
"""
VIEWER_QUERY = "query Viewer { viewer { id entity username } }"


def _settings_file(env: dict[str, str]) -> Path:
    config_dir = env.get("WANDB_CONFIG_DIR") or os.path.expanduser("~/.config/wandb")
    return Path(config_dir).expanduser() / "settings"


def _settings_value(env: dict[str, str], key: str) -> str | None:
    parser = configparser.ConfigParser()
    try:
        parser.read(_settings_file(env))
    except (OSError, configparser.Error):
        return None
    return parser.get("default", key, fallback=None) or None


def resolve_base_url(env: dict[str, str]) -> str:
    """The server: `WANDB_BASE_URL`, else `base_url` in wandb's settings file (as wandb resolves it)."""
    url = env.get("WANDB_BASE_URL") or _settings_value(env, "base_url")
    if not url:
        raise SyncError("no W&B server configured: set WANDB_BASE_URL (e.g. https://api.wandb.ai or your server)")
    return url.rstrip("/")


def resolve_api_key(env: dict[str, str], base_url: str) -> str:
    """The API key, looked up where wandb 0.31 looks: WANDB_API_KEY, the netrc entry for the
    server's host ($NETRC or ~/.netrc), then `api_key` in wandb's settings file."""
    if env.get("WANDB_API_KEY"):
        return env["WANDB_API_KEY"]
    netrc_path = env.get("NETRC") or os.path.expanduser("~/.netrc")
    with contextlib.suppress(OSError, netrc.NetrcParseError):
        creds = netrc.netrc(netrc_path).authenticators(urlsplit(base_url).netloc)
        if creds and creds[2]:
            return creds[2]
    key = _settings_value(env, "api_key")
    if key:
        return key
    raise SyncError(f"no W&B API key for {base_url}: set WANDB_API_KEY or run `wandb login`")


def app_url(base_url: str) -> str:
    """The web UI's URL for an API URL (wandb's own rule for cloud, on-prem and local servers)."""
    if "://api.wandb." in base_url:
        return base_url.replace("://api.", "://", 1).rstrip("/")
    if "://api." in base_url:
        return base_url.replace("://api.", "://app.", 1).rstrip("/")
    return base_url.rstrip("/")


class Server:
    """Our own small GraphQL client for the checks (ftmodel.http_client, basic auth `api:<key>`).

    `timeout` is an overall deadline for each query (a server trickling bytes cannot hold a check
    longer); every failure is a ServerError with one line saying what happened. A redirect to
    another host is refused (the key never leaves for a host the user did not name)."""

    ARTIFACTS_QUERY = """
query FtmodelRunArtifacts($entity: String, $project: String!, $run: String!, $cursor: String) {
  project(name: $project, entityName: $entity) {
    run(name: $run) {
      outputArtifacts(first: 100, after: $cursor) {
        totalCount
        pageInfo { endCursor hasNextPage }
        edges { node { id digest state versionIndex artifactType { name } artifactSequence { name } } }
      }
    }
  }
}
"""
    MAX_ARTIFACT_PAGES = 1000  # 100,000 artifacts: a bound, so a server repeating a cursor cannot loop us

    def __init__(self, base_url: str, api_key: str, timeout: float = QUERY_TIMEOUT):
        self.base_url = base_url.rstrip("/")
        self._auth = "Basic " + base64.b64encode(f"api:{api_key}".encode()).decode()
        self.timeout = timeout

    def query(self, query: str, variables: dict | None = None, operation: str | None = None) -> dict:
        """Send one GraphQL query; return its `data`, or raise ServerError."""
        body = json.dumps({"query": query, "variables": variables or {}, "operationName": operation}).encode()
        url = f"{self.base_url}/graphql"
        try:
            reply = http.request(
                "POST",
                url,
                body=body,
                timeout=self.timeout,
                deadline=self.timeout,
                headers={"Content-Type": "application/json", "Authorization": self._auth, "User-Agent": USER_AGENT},
            )
        except http.Unreachable as e:
            raise ServerError(f"server unreachable: {e}") from None
        except http.HTTPError as e:
            raise ServerError(f"server query failed: {e}") from None
        if reply.status >= 400:
            raise ServerError(f"server answered HTTP {reply.status} at {url}")
        try:
            payload = json.loads(reply.body or b"{}")
        except ValueError:
            raise ServerError(f"server at {self.base_url} answered something that is not JSON") from None
        if not isinstance(payload, dict):
            raise ServerError(f"server at {self.base_url} answered JSON that is not an object")
        if payload.get("errors"):
            errors = payload["errors"] if isinstance(payload["errors"], list) else [payload["errors"]]
            msg = "; ".join(str(err.get("message", err) if isinstance(err, dict) else err) for err in errors)[:300]
            raise ServerError(f"server error: {msg}")
        data = payload.get("data") or {}
        if not isinstance(data, dict):
            raise ServerError(f"server at {self.base_url} answered a `data` that is not an object")
        return data

    def viewer_entity(self) -> str | None:
        viewer = self._field(self.query(VIEWER_QUERY, operation="Viewer"), "viewer")
        return viewer.get("entity") if viewer else None

    def run(self, entity: str | None, project: str, run: str) -> dict | None:
        """The run as the server has it, with EVERY output artifact (the first query gets 100)."""
        variables = {"entity": entity, "project": project, "run": run}
        found = self._field(self.query(VERIFY_QUERY, variables, "FtmodelVerifyRun"), "project", "run")
        arts = self._field(found, "outputArtifacts") or {}
        edges = arts.get("edges") if isinstance(arts.get("edges"), list) else []
        try:
            total = int(arts.get("totalCount") or 0)
        except (TypeError, ValueError):
            raise ServerError(f"server at {self.base_url} answered a totalCount that is not a number") from None
        if found and total > len(edges):
            edges = self._all_artifacts(variables)
        if found:
            found["outputArtifacts"] = {**arts, "edges": [e for e in edges if isinstance(e, dict)]}
        return found

    def _field(self, data, *path: str) -> dict | None:
        """data[path…] when each step is an object; None when one is missing; ServerError when one is not an object."""
        for key in path:
            if data is None:
                return None
            if not isinstance(data, dict):
                raise ServerError(f"server at {self.base_url} answered {key!r} inside something that is not an object")
            data = data.get(key)
        if data is not None and not isinstance(data, dict):
            raise ServerError(f"server at {self.base_url} answered a {path[-1]!r} that is not an object")
        return data

    def _all_artifacts(self, variables: dict) -> list[dict]:
        """Page through a run's output artifacts, 100 at a time."""
        edges, cursor = [], None
        for _ in range(self.MAX_ARTIFACT_PAGES):
            data = self.query(self.ARTIFACTS_QUERY, {**variables, "cursor": cursor}, "FtmodelRunArtifacts")
            page = self._field(data, "project", "run", "outputArtifacts") or {}
            edges += [e for e in page.get("edges") or [] if isinstance(e, dict)]
            info = page.get("pageInfo") if isinstance(page.get("pageInfo"), dict) else {}
            if not info.get("hasNextPage") or not info.get("endCursor") or info.get("endCursor") == cursor:
                return edges
            cursor = info["endCursor"]
        raise ServerError(f"server at {self.base_url}: more than {self.MAX_ARTIFACT_PAGES} pages of artifacts")
