"""Talking to the W&B server ourselves: which server and which key (asked of wandb itself), and
one small GraphQL client (through ftmodel.http_client, so a key never follows a redirect to
another host and every query has a deadline) that asks what the server holds of a run.

Which server and key: wandb resolves them, in a subprocess with the user's environment and
working directory, with its own code (`wandb_setup` settings, `wbauth.authenticate_session`) —
so every rule wandb has is ours, now and after a wandb upgrade: `WANDB_BASE_URL`, else `base_url`
in the settings files `wandb login --host` writes (`$WANDB_CONFIG_DIR` or `~/.config/wandb`, then
`./wandb/settings`), else wandb's default server; the key from `WANDB_API_KEY`, else the netrc
entry for THAT server's host (`$NETRC`, `~/.netrc`, `~/_netrc`), else the settings' `api_key`;
`WANDB_IDENTITY_TOKEN_FILE` (federated identity) instead of a key. One rule is stricter than
wandb's: wandb pairs a settings file's `api_key` with whatever server is in force (so
`WANDB_BASE_URL=B` would send the key saved beside `base_url = A` to B); here that key goes only
to the server its settings files name. The workspace's private wandb directories never take part: they are for the
stages' offline runs, not the user's login. The key comes back through a pipe, never to disk.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ftmodel import http_client as http
from ftmodel.errors import ServerError, SyncError
from ftmodel.i18n import t

USER_AGENT = "ftmodel-sync/1"
QUERY_TIMEOUT = 20.0  # our own GraphQL requests, seconds
RESOLVE_TIMEOUT = 120.0  # the subprocess that asks wandb (imports wandb: a second or two; a token exchange)

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

# Run by `resolve_credentials` with the user's environment: wandb's own resolution, printed as one
# JSON object. (wandb_setup prints where it read settings from on stderr; stderr is only for errors.)
_ASK_WANDB = r"""
import json, os, sys
try:
    from wandb.sdk import wandb_setup
    from wandb.sdk.lib import urls, wbauth
    settings = wandb_setup.singleton().settings
    auth = wbauth.authenticate_session(
        host=settings.base_url, source="ftmodel sync", prompt=False, update_session=False
    )
    out = {"base_url": settings.base_url.rstrip("/"), "app_url": settings.app_url}
    if isinstance(auth, wbauth.AuthApiKey):
        out.update(base_url=auth.host.url, app_url=auth.host.app_url, api_key=auth.api_key)
        from wandb import env as wandb_env
        from wandb.sdk.lib.wbauth import wbnetrc
        from_settings = not os.getenv(wandb_env.API_KEY) and not wbnetrc.read_netrc_auth(host=auth.host)
        if from_settings:  # wandb ties a settings file's api_key to whichever server is in force
            files = settings.read_system_settings()
            saved_for = files.all().get("base_url") or urls.DEFAULT_BASE_URL
            if not auth.host.is_same_url(urls.normalize_forge_base_url(saved_for)):
                out = {"foreign_key": saved_for, "base_url": auth.host.url,
                       "files": [str(f) for f in files.sources]}
    elif isinstance(auth, wbauth.AuthIdentityTokenFile):
        out.update(base_url=auth.host.url, app_url=auth.host.app_url, identity_token_file=str(auth.path))
        if sys.argv[1:] == ["--access-token"]:
            from wandb.apis.public.service_api import ServiceApi
            settings = settings.model_copy()
            wbauth.set_auth_settings(settings, auth)
            out["access_token"] = ServiceApi(settings=settings, timeout=60).access_token()
    elif auth is not None:
        out["unsupported"] = type(auth).__name__
except Exception as e:
    out = {"error": f"{type(e).__name__}: {e}"}
sys.stdout.write(json.dumps(out))
"""


@dataclass(frozen=True)
class Credentials:
    """A W&B server and what proves who we are to it (never printed: `repr` hides the secrets)."""

    base_url: str
    app_url: str
    api_key: str | None = field(default=None, repr=False)
    identity_token_file: str | None = None
    access_token: str | None = field(default=None, repr=False)  # exchanged for the identity token

    @property
    def secrets(self) -> list[str]:
        """What must never appear in a log, the ledger or a printed command."""
        return [s for s in (self.api_key, self.access_token) if s]

    def authorization(self) -> str:
        """The Authorization header our own queries send (wandb's: basic `api:<key>`, or the bearer token)."""
        if self.api_key:
            return "Basic " + base64.b64encode(f"api:{self.api_key}".encode()).decode()
        return f"Bearer {self.access_token}"

    def client_environment(self) -> dict[str, str]:
        """What the `wandb sync` client is told: this server and this proof, nothing left to guess."""
        env = {"WANDB_BASE_URL": self.base_url}
        if self.api_key:
            env["WANDB_API_KEY"] = self.api_key
        else:
            env["WANDB_IDENTITY_TOKEN_FILE"] = str(self.identity_token_file)
        return env


def resolve_credentials(
    env: dict[str, str],
    cwd: str | Path | None = None,
    *,
    access_token: bool = True,
    scratch: dict[str, str] | None = None,
) -> Credentials:
    """The server and key (or identity token) wandb itself would use in `env` and `cwd` (default:
    this process's). SyncError, naming the server, when there is no key for it or wandb cannot say.

    `scratch`: where wandb may write while it answers (its cache and logs, the access-token cache
    of an identity-token login), e.g. the workspace's directories; the user's own settings win."""
    env = {k: v for k, v in env.items() if k != "WANDB_MODE"}
    for name, value in (scratch or {}).items():
        env.setdefault(name, value)
    env["WANDB_SILENT"] = "true"
    argv = [sys.executable, "-c", _ASK_WANDB] + (["--access-token"] if access_token else [])
    try:
        proc = subprocess.run(
            argv,
            env=env,
            cwd=str(cwd) if cwd else None,
            capture_output=True,
            text=True,
            timeout=RESOLVE_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        found = json.loads(proc.stdout or "{}")
    except subprocess.TimeoutExpired:
        raise SyncError(
            t("asking wandb which W&B server and key to use took more than {timeout:g} s", timeout=RESOLVE_TIMEOUT)
        ) from None
    except (OSError, ValueError) as e:
        raise SyncError(t("cannot ask wandb which W&B server and key to use: {reason}", reason=e)) from None
    if not isinstance(found, dict) or "error" in found or "base_url" not in found:
        why = found.get("error") if isinstance(found, dict) else None
        why = why or (proc.stderr.strip().splitlines() or ["no answer"])[-1]
        raise SyncError(t("cannot tell which W&B server and key to use (wandb says: {why})", why=why[:300]))
    base_url = found["base_url"]
    if found.get("foreign_key"):
        raise SyncError(
            t(
                "the api_key in wandb's settings ({files}) was saved for {other}, not for {url}: it is not sent "
                "there. Run `wandb login --host {url}`, or set WANDB_API_KEY for it",
                files=", ".join(found.get("files") or []) or t("settings file"),
                other=found["foreign_key"],
                url=base_url,
            )
        )
    if found.get("unsupported"):
        raise SyncError(
            t(
                "wandb's credentials for {url} are of a kind ftmodel cannot check ({kind})",
                url=base_url,
                kind=found["unsupported"],
            )
        )
    if found.get("api_key"):
        return Credentials(base_url, found.get("app_url") or base_url, api_key=found["api_key"])
    if found.get("identity_token_file"):
        if access_token and not found.get("access_token"):
            raise SyncError(
                t(
                    "the identity token in {path} gave no access token for {url}",
                    path=found["identity_token_file"],
                    url=base_url,
                )
            )
        return Credentials(
            base_url,
            found.get("app_url") or base_url,
            identity_token_file=found["identity_token_file"],
            access_token=found.get("access_token"),
        )
    raise SyncError(
        t(
            "no W&B API key for {url}: run `wandb login --host {url}` (or set WANDB_API_KEY; set WANDB_BASE_URL, "
            "or log in with --host, for another server)",
            url=base_url,
        )
    )


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

    def __init__(
        self, base_url: str, api_key: str | None = None, timeout: float = QUERY_TIMEOUT, *, app_url=None, auth=None
    ):
        self.base_url = base_url.rstrip("/")
        self.app_url = (app_url or self.base_url).rstrip("/")
        self._auth = auth or "Basic " + base64.b64encode(f"api:{api_key}".encode()).decode()
        self.timeout = timeout

    @classmethod
    def of(cls, creds: Credentials, timeout: float = QUERY_TIMEOUT) -> Server:
        """The client for a resolved server and its credentials."""
        return cls(creds.base_url, timeout=timeout, app_url=creds.app_url, auth=creds.authorization())

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
            raise ServerError(t("server unreachable: {reason}", reason=e)) from None
        except http.HTTPError as e:
            raise ServerError(t("server query failed: {reason}", reason=e)) from None
        if reply.status >= 400:
            raise ServerError(t("server answered HTTP {code} at {url}", code=reply.status, url=url))
        try:
            payload = json.loads(reply.body or b"{}")
        except ValueError:
            raise ServerError(t("server at {url} answered something that is not JSON", url=self.base_url)) from None
        if not isinstance(payload, dict):
            raise ServerError(t("server at {url} answered JSON that is not an object", url=self.base_url))
        if payload.get("errors"):
            errors = payload["errors"] if isinstance(payload["errors"], list) else [payload["errors"]]
            msg = "; ".join(str(err.get("message", err) if isinstance(err, dict) else err) for err in errors)[:300]
            raise ServerError(t("server error: {message}", message=msg))
        data = payload.get("data") or {}
        if not isinstance(data, dict):
            raise ServerError(t("server at {url} answered a `data` that is not an object", url=self.base_url))
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
            raise ServerError(
                t("server at {url} answered a totalCount that is not a number", url=self.base_url)
            ) from None
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
                raise ServerError(
                    t(
                        "server at {url} answered {key!r} inside something that is not an object",
                        url=self.base_url,
                        key=key,
                    )
                )
            data = data.get(key)
        if data is not None and not isinstance(data, dict):
            raise ServerError(
                t("server at {url} answered a {key!r} that is not an object", url=self.base_url, key=path[-1])
            )
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
        raise ServerError(
            t("server at {url}: more than {n} pages of artifacts", url=self.base_url, n=self.MAX_ARTIFACT_PAGES)
        )
