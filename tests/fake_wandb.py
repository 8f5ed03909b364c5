"""A recording stand-in for a W&B server, on 127.0.0.1 only, for testing `ftmodel sync`.

It speaks enough of the W&B protocol for the real `wandb sync` client (wandb-core 0.31) to finish
a sync: GraphQL answered by operationName with minimal JSON, the file_stream endpoint, and PUT
uploads for artifact and run files. It RECORDS everything per run (history lines by offset, the
raw number of history lines received, summary, config, artifacts and whether they were committed,
every request) and answers our own verification query from what it recorded.

Faults it injects on demand (`server.faults`):
- `file_stream_fail`: a set of 1-based file_stream request numbers answered with `file_stream_status`
  (e.g. {1, 2, 3} = the first three fail, then it recovers);
- `file_stream_lose_response`: request numbers that are APPLIED but answered 500 (a response lost
  on the way back: the client must resend, and the offset makes the resend harmless);
- `history_accept_limit`: keep at most this many history lines per run, then answer 500 (a stream
  that died mid-way with a prefix stored on the server);
- `hang_ops` / `hang_paths`: GraphQL operation names / path prefixes whose responses hang (until
  the server stops or `hang_seconds` pass);
- `drop_commits`: CommitArtifact answers success but the artifact stays PENDING (a dropped commit);
- `fail_commits`: CommitArtifact answers 500.
- `short_reply_ops`: GraphQL operation names answered with a body cut short (the Content-Length
  promises more than is sent, then the connection closes).
A closed port (the server down) is `closed_port_url()`.

Stdlib only. Unknown requests are logged in `server.unknown` and answered `{"data": {}}`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"
HISTORY_FILE = "wandb-history.jsonl"
SUMMARY_FILE = "wandb-summary.json"
ARTIFACT_PAGE = 100  # the most artifacts one query returns


def closed_port_url() -> str:
    """Return a URL on 127.0.0.1 where nothing listens (a server that is down)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    return f"http://{HOST}:{port}"


@dataclass
class Faults:
    """What to break; tests change these between syncs."""

    file_stream_fail: set[int] = field(default_factory=set)
    file_stream_status: int = 500
    hang_ops: set[str] = field(default_factory=set)
    hang_paths: tuple[str, ...] = ()
    hang_seconds: float = 600.0
    file_stream_lose_response: set[int] = field(default_factory=set)
    history_accept_limit: int | None = None
    drop_commits: bool = False
    fail_commits: bool = False
    short_reply_ops: set[str] = field(default_factory=set)


@dataclass
class RunRecord:
    """Everything the server received for one run."""

    name: str
    entity: str
    project: str
    storage_id: str
    display_name: str = ""
    config: dict = field(default_factory=dict)  # as sent: {key: {"value": v, "desc": None}}
    tags: list = field(default_factory=list)
    group: str = ""
    job_type: str = ""
    summary: dict = field(default_factory=dict)
    history: dict[int, str] = field(default_factory=dict)  # line offset -> JSON line
    history_lines_received: int = 0  # every line received, resent ones included
    events: dict[int, str] = field(default_factory=dict)
    output: dict[int, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # run files uploaded with PUT
    complete: bool = False
    exitcode: int | None = None
    upserts: int = 0
    file_stream_posts: int = 0
    requests: int = 0  # every client request attributed to this run

    @property
    def history_line_count(self) -> int:
        return len(self.history)

    def history_rows(self) -> list[dict]:
        """The history rows in offset order."""
        return [json.loads(self.history[k]) for k in sorted(self.history)]

    def history_keys(self) -> dict:
        """What W&B's `historyKeys` field holds: the last step and the keys seen."""
        rows = self.history_rows()
        keys = sorted({k for row in rows for k in row})
        return {"lastStep": rows[-1].get("_step") if rows else None, "keys": {k: {} for k in keys}}


class FakeWandb:
    """The recording server. Use as a context manager or call start()/stop()."""

    def __init__(self, *, api_key: str | None = None, entity: str = "fake-entity"):
        self.api_key = api_key
        self.entity = entity
        self.faults = Faults()
        self.runs: dict[str, RunRecord] = {}  # by run name (the run id)
        self.artifacts: dict[str, dict] = {}  # by artifact id
        self.uploads: dict[str, bytes] = {}  # by upload path
        self.requests: list[dict] = []  # {method, path, op, run, status, agent, auth (the Authorization header)}
        self.unknown: list[dict] = []
        self.access_tokens: dict[str, str] = {}  # identity token (JWT) -> the access token it was exchanged for
        self.file_stream_log: list[dict] = []  # per accepted POST: {run, files: {name: [offset, n]}, complete}
        self.lock = threading.RLock()
        self._stopping = threading.Event()
        self._ids = 0
        self._file_stream_count = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeWandb:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer((HOST, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-wandb", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeWandb:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{HOST}:{self._server.server_address[1]}"

    # ---- queries for tests ------------------------------------------------------------------
    def run(self, name: str) -> RunRecord:
        return self.runs[name]

    def run_artifacts(self, name: str) -> list[dict]:
        with self.lock:
            return [a for a in self.artifacts.values() if a["run"] == name]

    def requests_for(self, run: str) -> list[dict]:
        """Client requests attributed to a run (our own verification queries excluded)."""
        with self.lock:
            return [r for r in self.requests if r["run"] == run and not r["agent"].startswith("ftmodel")]

    def keys_seen(self) -> set[str]:
        """Every API key a request carried (basic auth `api:<key>`, as wandb and ftmodel send it)."""
        with self.lock:
            headers = [r["auth"] for r in self.requests if r.get("auth")]
        keys = set()
        for header in headers:
            if header.startswith("Basic "):
                keys.add(base64.b64decode(header[6:]).decode(errors="replace").partition(":")[2])
            else:
                keys.add(header)
        return keys

    def client_requests(self) -> list[dict]:
        """Every request not made by ftmodel's verifier."""
        with self.lock:
            return [r for r in self.requests if not r["agent"].startswith("ftmodel")]

    # ---- helpers ----------------------------------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        with self.lock:
            self._ids += 1
            return base64.b64encode(f"{prefix}:{self._ids}".encode()).decode()

    def _get_run(self, name: str, entity: str | None = None, project: str | None = None) -> RunRecord:
        with self.lock:
            rec = self.runs.get(name)
            if rec is None:
                rec = RunRecord(
                    name=name,
                    entity=entity or self.entity,
                    project=project or "uncategorized",
                    storage_id=self._new_id("Run"),
                )
                self.runs[name] = rec
            return rec

    def _hang(self) -> None:
        self._stopping.wait(self.faults.hang_seconds)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeWandb
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep pytest output clean
        pass

    def setup(self):
        # As real servers do: on a kept-alive connection Nagle's algorithm would hold every reply
        # body until the client's delayed ACK (~40 ms a request).
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    # ---- plumbing ---------------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def _send(self, status: int, payload: Any = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload if payload is not None else {}).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up on a hanging answer
            self.close_connection = True

    def _record(self, op: str, run: str | None, status: int) -> None:
        fake = self.fake
        with fake.lock:
            fake.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "op": op,
                    "run": run,
                    "status": status,
                    "agent": self.headers.get("User-Agent", ""),
                    "auth": self.headers.get("Authorization"),
                    "time": time.time(),
                }
            )
            if run and run in fake.runs and not self.headers.get("User-Agent", "").startswith("ftmodel"):
                fake.runs[run].requests += 1

    def _authorised(self) -> bool:
        if self.fake.api_key is None:
            return True
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in self.fake.access_tokens.values():
            return True
        if not auth.startswith("Basic "):
            return False
        try:
            user, _, key = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return False
        return key == self.fake.api_key

    # ---- HTTP verbs -------------------------------------------------------------------------
    def do_POST(self):
        body = self._body()
        if self.path == "/oidc/token":  # federated identity: a JWT from the token file for an access token
            return self._oidc_token(body)
        if not self._authorised():
            self._record("unauthorised", None, 401)
            return self._send(401, {"errors": [{"message": "unauthorised"}]})
        for prefix in self.fake.faults.hang_paths:
            if self.path.startswith(prefix):
                self.fake._hang()
                return self._send(504, {})
        if self.path.startswith("/graphql"):
            return self._graphql(body)
        if self.path.endswith("/file_stream"):
            return self._file_stream(body)
        if self.path.startswith("/sdk/otel/"):  # the client's own telemetry: accept and ignore
            self._record("otel", None, 200)
            return self._send(200, {})
        self._unknown(body)

    def do_PUT(self):
        body = self._body()
        for prefix in self.fake.faults.hang_paths:
            if self.path.startswith(prefix):
                self.fake._hang()
                return self._send(504, {})
        fake = self.fake
        with fake.lock:
            fake.uploads[self.path] = body
            run = None
            if self.path.startswith("/upload/runfile/"):
                _, _, _, run, name = self.path.split("/", 4)
                fake._get_run(run).files[name] = body
            elif self.path.startswith("/upload/artifact/"):
                art_id = self.path.split("/")[3]
                art = fake.artifacts.get(art_id)
                if art is not None:
                    run = art["run"]
                    art["uploads"][self.path] = hashlib.md5(body).hexdigest()
        self._record("PUT", run, 200)
        self._send(200, raw=b"")

    def do_GET(self):
        self._unknown(b"")

    def _unknown(self, body: bytes) -> None:
        with self.fake.lock:
            self.fake.unknown.append(
                {"method": self.command, "path": self.path, "body": body[:2000].decode("utf-8", "replace")}
            )
        self._record("unknown", None, 404)
        self._send(404, {"error": "not found"})

    def _oidc_token(self, body: bytes) -> None:
        from urllib.parse import parse_qs

        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        fake = self.fake
        ok = form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer" and form.get("assertion")
        with fake.lock:
            token = f"wb-access-{len(fake.access_tokens) + 1}" if ok else None
            if token:
                fake.access_tokens[form["assertion"]] = token
        self._record("oidc_token", None, 200 if ok else 400)
        if not ok:
            return self._send(400, {"error": "invalid_grant"})
        self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    # ---- file_stream ------------------------------------------------------------------------
    def _file_stream(self, body: bytes) -> None:
        fake = self.fake
        # /files/<entity>/<project>/<run>/file_stream
        parts = self.path.split("?")[0].strip("/").split("/")
        entity, project, run_name = parts[1], parts[2], parts[3]
        with fake.lock:
            fake._file_stream_count += 1
            n = fake._file_stream_count
        if n in fake.faults.file_stream_fail:
            self._record("file_stream", run_name, fake.faults.file_stream_status)
            return self._send(fake.faults.file_stream_status, {"error": "injected failure"})
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            self._record("file_stream", run_name, 400)
            return self._send(400, {"error": "bad json"})
        with fake.lock:
            rec = fake._get_run(run_name, entity, project)
            rec.file_stream_posts += 1
            fake.file_stream_log.append(
                {
                    "run": run_name,
                    "complete": bool(payload.get("complete")),
                    "files": {
                        k: [v.get("offset", 0), len(v.get("content") or [])]
                        for k, v in (payload.get("files") or {}).items()
                    },
                }
            )
            limit = fake.faults.history_accept_limit
            truncated = False
            for name, chunk in (payload.get("files") or {}).items():
                offset = int(chunk.get("offset", 0))
                lines = chunk.get("content") or []
                if name == HISTORY_FILE:
                    rec.history_lines_received += len(lines)
                    for i, line in enumerate(lines):
                        if limit is not None and offset + i >= limit:
                            truncated = True
                            break
                        rec.history[offset + i] = line
                elif name == SUMMARY_FILE:
                    if lines:
                        rec.summary = json.loads(lines[-1])
                elif name == "wandb-events.jsonl":
                    for i, line in enumerate(lines):
                        rec.events[offset + i] = line
                elif name == "output.log":
                    for i, line in enumerate(lines):
                        rec.output[offset + i] = line
            if truncated:
                self._record("file_stream", run_name, 500)
                return self._send(500, {"error": "injected failure: stream cut mid-way"})
            if payload.get("complete"):
                rec.complete = True
                rec.exitcode = payload.get("exitcode")
        if n in fake.faults.file_stream_lose_response:
            self._record("file_stream", run_name, 500)
            return self._send(500, {"error": "injected failure after applying"})
        self._record("file_stream", run_name, 200)
        self._send(200, {"exitcode": None, "limits": {}})

    # ---- GraphQL ----------------------------------------------------------------------------
    def _graphql(self, body: bytes) -> None:
        fake = self.fake
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return self._send(400, {"errors": [{"message": "bad json"}]})
        op = req.get("operationName") or _op_from_query(req.get("query", ""))
        var = req.get("variables") or {}
        if op in fake.faults.hang_ops:
            fake._hang()
            self._record(op, None, 504)
            return self._send(504, {})
        if op in fake.faults.short_reply_ops:
            self._record(op, None, 200)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "4096")
            self.end_headers()
            self.wfile.write(b'{"data": {"vie')
            self.close_connection = True
            return None
        handler = getattr(self, f"_gql_{op}", None)
        if handler is None:
            with fake.lock:
                fake.unknown.append({"method": "POST", "path": self.path, "op": op, "variables": var})
            self._record(op, _run_of(var), 200)
            return self._send(200, {"data": {}})
        status, data, run = handler(var)
        self._record(op, run, status)
        if status != 200:
            return self._send(status, {"errors": [{"message": f"injected failure in {op}"}]})
        self._send(200, {"data": data})

    def _gql_Viewer(self, var):
        f = self.fake
        return (
            200,
            {
                "viewer": {
                    "id": "VXNlcjox",
                    "entity": f.entity,
                    "username": f.entity,
                    "flags": None,
                    "teams": {"edges": []},
                }
            },
            None,
        )

    def _gql_ServerFeaturesQuery(self, var):
        return 200, {"serverInfo": {"features": []}}, None

    def _gql_ServerInfo(self, var):
        return 200, {"serverInfo": {"features": [], "cliVersionInfo": {}, "latestLocalVersionInfo": None}}, None

    def _gql_UpsertBucket(self, var):
        f = self.fake
        name = var.get("name") or var.get("id")
        with f.lock:
            rec = f._get_run(name, var.get("entity") or None, var.get("project") or None)
            rec.upserts += 1
            if var.get("entity"):
                rec.entity = var["entity"]
            if var.get("project"):
                rec.project = var["project"]
            if var.get("config"):
                rec.config = json.loads(var["config"])
            for key, attr in (("displayName", "display_name"), ("groupName", "group"), ("jobType", "job_type")):
                if var.get(key):
                    setattr(rec, attr, var[key])
            if var.get("tags") is not None:
                rec.tags = list(var["tags"])
            if var.get("summaryMetrics"):
                rec.summary.update(json.loads(var["summaryMetrics"]))
            bucket = {
                "id": rec.storage_id,
                "name": rec.name,
                "displayName": rec.display_name,
                "description": None,
                "config": json.dumps(rec.config),
                "sweepName": None,
                "project": {
                    "id": "UHJvamVjdDox",
                    "name": rec.project,
                    "entity": {"id": "RW50aXR5OjE=", "name": rec.entity},
                },
                "historyLineCount": rec.history_line_count,
            }
        return 200, {"upsertBucket": {"bucket": bucket, "inserted": rec.upserts == 1}}, name

    def _gql_RunResumeStatus(self, var):
        f = self.fake
        rec = f.runs.get(var.get("name"))
        bucket = None
        if rec is not None:
            bucket = {
                "id": rec.storage_id,
                "name": rec.name,
                "summaryMetrics": json.dumps(rec.summary),
                "displayName": rec.display_name,
                "logLineCount": len(rec.output),
                "historyLineCount": rec.history_line_count,
                "eventsLineCount": len(rec.events),
                "historyTail": json.dumps([rec.history[k] for k in sorted(rec.history)[-5:]]),
                "eventsTail": "[]",
                "config": json.dumps(rec.config),
                "notes": None,
                "wandbConfig": json.dumps({}),
                "tags": rec.tags,
            }
        return (
            200,
            {
                "model": {
                    "id": "UHJvamVjdDox",
                    "name": var.get("project"),
                    "entity": {"id": "RW50aXR5OjE=", "name": f.entity},
                    "bucket": bucket,
                }
            },
            var.get("name"),
        )

    def _gql_CreateRunFiles(self, var):
        run = var["run"]
        files = [{"name": n, "uploadUrl": f"{self.fake.url}/upload/runfile/{run}/{n}"} for n in var["files"]]
        return (
            200,
            {"createRunFiles": {"runID": self.fake._get_run(run).storage_id, "uploadHeaders": [], "files": files}},
            run,
        )

    def _gql_CreateArtifact(self, var):
        f = self.fake
        inp = var["input"]
        run = inp.get("runName")
        collection = (inp.get("artifactCollectionNames") or [inp.get("artifactCollectionName")])[0]
        with f.lock:
            # The server deduplicates by digest within a collection: a resent artifact is the same one.
            for art in f.artifacts.values():
                if (
                    art["collection"] == collection
                    and art["digest"] == inp.get("digest")
                    and art["project"] == inp.get("projectName")
                ):
                    break
            else:
                versions = [a for a in f.artifacts.values() if a["collection"] == collection]
                art = {
                    "id": f._new_id("Artifact"),
                    "collection": collection,
                    "type": inp.get("artifactTypeName"),
                    "digest": inp.get("digest"),
                    "state": "PENDING",
                    "run": run,
                    "entity": inp.get("entityName") or f.entity,
                    "project": inp.get("projectName"),
                    "version_index": len(versions),
                    "aliases": [a.get("alias") for a in inp.get("aliases") or []],
                    "files": {},
                    "uploads": {},
                    "manifest": None,
                    "creates": 0,
                    "commits": 0,
                }
                f.artifacts[art["id"]] = art
            art["creates"] += 1
            data = {
                "createArtifact": {
                    "artifact": {
                        "id": art["id"],
                        "state": art["state"],
                        "artifactSequence": {"latestArtifact": {"id": art["id"]}},
                    }
                }
            }
        return 200, data, run

    def _gql_CreateArtifactManifest(self, var):
        f = self.fake
        art = f.artifacts.get(var["artifactID"])
        if art is None:
            return 404, None, var.get("runName")
        art["manifest"] = {"digest": var.get("digest")}
        file = {"id": f._new_id("File")}
        if var.get("includeUpload", True):
            file["uploadUrl"] = f"{f.url}/upload/artifact/{art['id']}/wandb_manifest.json"
            file["uploadHeaders"] = []
        return (
            200,
            {"createArtifactManifest": {"artifactManifest": {"id": f._new_id("Manifest"), "file": file}}},
            var.get("runName") or art["run"],
        )

    def _gql_UpdateArtifactManifest(self, var):
        f = self.fake
        file = {"id": f._new_id("File")}
        if var.get("includeUpload", True):
            file["uploadUrl"] = f"{f.url}/upload/artifact/manifest-{var['artifactManifestID']}/wandb_manifest.json"
            file["uploadHeaders"] = []
        return (
            200,
            {"updateArtifactManifest": {"artifactManifest": {"id": var["artifactManifestID"], "file": file}}},
            None,
        )

    def _gql_CreateArtifactFiles(self, var):
        f = self.fake
        edges = []
        run = None
        for spec in var["input"]["artifactFiles"]:
            art = f.artifacts[spec["artifactID"]]
            run = art["run"]
            art["files"][spec["name"]] = spec.get("md5")
            edges.append(
                {
                    "node": {
                        "storagePath": f"{art['id']}/{spec['name']}",
                        "uploadUrl": f"{f.url}/upload/artifact/{art['id']}/{spec['name']}",
                        "uploadHeaders": [],
                        "uploadMultipartUrls": None,
                        "artifact": {"id": art["id"]},
                    }
                }
            )
        return 200, {"createArtifactFiles": {"files": {"edges": edges}}}, run

    def _gql_CommitArtifact(self, var):
        f = self.fake
        art = f.artifacts.get(var["artifactID"])
        if art is None:
            return 404, None, None
        art["commits"] += 1
        if f.faults.fail_commits:
            return 500, None, art["run"]
        if not f.faults.drop_commits:
            art["state"] = "COMMITTED"
        return 200, {"commitArtifact": {"artifact": {"id": art["id"], "digest": art["digest"]}}}, art["run"]

    def _gql_UseArtifact(self, var):
        return 200, {"useArtifact": {"artifact": {"id": var["input"].get("artifactID")}}}, var["input"].get("runName")

    def _gql_FtmodelVerifyRun(self, var):
        """Our verifier's query (see ftmodel/sync.py): answered from what was recorded."""
        f = self.fake
        with f.lock:
            rec = f.runs.get(var["run"])
            if rec is None or (var.get("entity") and rec.entity != var["entity"]) or rec.project != var["project"]:
                return 200, {"project": {"run": None}}, var["run"]
            arts = [
                {
                    "node": {
                        "id": a["id"],
                        "digest": a["digest"],
                        "state": a["state"],
                        "versionIndex": a["version_index"],
                        "artifactType": {"name": a["type"]},
                        "artifactSequence": {"name": a["collection"]},
                    }
                }
                for a in f.artifacts.values()
                if a["run"] == rec.name
            ]
            run = {
                "id": rec.storage_id,
                "name": rec.name,
                "displayName": rec.display_name,
                "state": "finished" if rec.complete else "running",
                "historyLineCount": rec.history_line_count,
                "historyKeys": rec.history_keys(),
                "summaryMetrics": json.dumps(rec.summary),
                "config": json.dumps(rec.config),
                "project": {"name": rec.project, "entity": {"name": rec.entity}},
                # `outputArtifacts(first: 100)`: one page, as a real server answers it
                "outputArtifacts": {"totalCount": len(arts), "edges": arts[:ARTIFACT_PAGE]},
            }
        return 200, {"project": {"run": run}}, var["run"]

    def _gql_FtmodelRunArtifacts(self, var):
        """Our verifier's paging query: 100 artifacts after the cursor (the index of the last one seen)."""
        f = self.fake
        with f.lock:
            rec = f.runs.get(var["run"])
            if rec is None:
                return 200, {"project": {"run": None}}, var["run"]
            arts = [a for a in f.artifacts.values() if a["run"] == rec.name]
        start = int(var.get("cursor") or 0)
        page = arts[start : start + ARTIFACT_PAGE]
        edges = [
            {
                "cursor": str(start + i + 1),
                "node": {
                    "id": a["id"],
                    "digest": a["digest"],
                    "state": a["state"],
                    "versionIndex": a["version_index"],
                    "artifactType": {"name": a["type"]},
                    "artifactSequence": {"name": a["collection"]},
                },
            }
            for i, a in enumerate(page)
        ]
        info = {"endCursor": edges[-1]["cursor"] if edges else None, "hasNextPage": start + len(page) < len(arts)}
        return (
            200,
            {"project": {"run": {"outputArtifacts": {"totalCount": len(arts), "pageInfo": info, "edges": edges}}}},
            var["run"],
        )


def _op_from_query(query: str) -> str:
    words = query.replace("(", " ").replace("{", " ").split()
    for i, w in enumerate(words[:-1]):
        if w in ("query", "mutation"):
            return words[i + 1]
    return ""


def _run_of(var: dict) -> str | None:
    for key in ("run", "runName", "name"):
        if isinstance(var.get(key), str):
            return var[key]
    inp = var.get("input")
    if isinstance(inp, dict) and isinstance(inp.get("runName"), str):
        return inp["runName"]
    return None


if __name__ == "__main__":  # a manual check: run it and point WANDB_BASE_URL at it
    with FakeWandb() as server:
        print(server.url, flush=True)
        try:
            while True:
                time.sleep(2)
                for u in server.unknown:
                    print("unknown:", u)
                server.unknown.clear()
        except KeyboardInterrupt:
            pass
