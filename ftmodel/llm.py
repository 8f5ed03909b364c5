"""Chat clients for teacher and judge models: an OpenAI-compatible server or a local model.

The OpenAI client speaks through ftmodel.http_client (stdlib): a redirect to another host is refused
(the key never leaves for a host the user did not name), and a cut-off or trickling reply is a
named error. It STREAMS replies (`"stream": true`, server-sent events) so `timeout_s` bounds
silence, not the length of a whole reply; a server that does not stream is asked for whole
replies from then on. Retries with exponential backoff on refused connections, timeouts, HTTP
429/5xx and malformed replies, waiting at least what a 429/503's `Retry-After` asks (bounded by
http_client.RETRY_AFTER_MAX_S); a clear error for everything else (401 names the environment
variable that should hold the key). The key is read from the environment at call time and never
stored. Connections are kept alive between requests (http_client's pools).

`map_chat` runs many requests with bounded concurrency, and the client's Pace adapts it to the
server: it starts with one request in flight and doubles while replies come back in time; a
timeout (or replies queued longer than half the timeout) halves it, and it grows back by one.
map_chat logs what the server's pace allows and cancels (closes) requests it abandons, so retries
do not pile onto a server still busy with them.
(Over 400 lines: the client, its Pace and map_chat are one mechanism and change together.)
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ftmodel import http_client as http
from ftmodel.errors import FtmodelError
from ftmodel.i18n import t

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
PACE_REPORT_S = 120.0  # map_chat logs the server's pace after a few replies, then at most this often
NOTE_POLL_S = 5.0  # how often map_chat logs Pace's notes while no reply comes


class LLMError(FtmodelError, RuntimeError):
    """A request that failed for good; `fatal` when no other request can succeed either (bad key)."""

    def __init__(self, message: str, *, fatal: bool = False):
        super().__init__(message)
        self.fatal = fatal


@dataclass
class Reply:
    """One chat completion's text and token usage."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatClient(Protocol):
    """Anything that answers a list of chat messages."""

    def chat(self, messages: list[dict]) -> Reply: ...


class Pace:
    """How many requests to keep in flight at one server, adapted to how it copes, and its measured pace.

    Slow start, then additive increase and multiplicative decrease (as TCP does): it starts with
    one request and doubles after each round of replies in time, up to the configured concurrency,
    so a server that answers one request at a time is not buried under eight at the start. A
    timeout, a 429/503, or a reply whose first token waited longer than `slow_s` (the server
    queues our requests) halves the limit (once per congestion: requests sent before the last cut
    do not cut again) and ends the slow start. After that a run of replies in time raises it by
    one; the run needed doubles at every cut, so a server that only copes with one request is
    probed rarely (after 8, 16, 32… replies), not every other reply."""

    def __init__(self, limit: int, slow_s: float, name: str = "server"):
        self.max_limit = max(1, int(limit))
        self.limit = 1
        self._slow_start = True
        self.slow_s = slow_s
        self.name = name
        self.in_flight = 0
        self.replies = 0
        self.timeouts = 0
        self._cond = threading.Condition()
        self._streak = 0
        self._grow_after = 4  # replies in time in a row before one more request in flight
        self._cut_at = float("-inf")
        self._notes: list[str] = []
        self._work_s = 0.0  # sum over streamed replies of first token -> end: the server's own work
        self._streamed = 0
        self._latency_s = 0.0  # sum over replies of send -> end
        self._first_sent: float | None = None
        self._last_end: float | None = None

    def acquire(self, cancel: http.Cancel | None = None) -> float:
        """Wait for a free slot; return the send time."""
        with self._cond:
            while self.in_flight >= self.limit:
                if cancel is not None and cancel.cancelled:
                    raise http.Cancelled(t("{name}: cancelled", name=self.name))
                self._cond.wait(0.2)
            self.in_flight += 1
            now = time.monotonic()
            if self._first_sent is None:
                self._first_sent = now
            return now

    def release(self, sent: float, first_token: float | None, outcome: str) -> None:
        """Free the slot and learn from the outcome: "ok", "timeout", "busy" (429/503) or "error"."""
        ended = time.monotonic()
        with self._cond:
            self.in_flight -= 1
            if outcome == "ok":
                self.replies += 1
                self._latency_s += ended - sent
                self._last_end = ended
                if first_token is not None and first_token < ended:
                    self._work_s += ended - first_token
                    self._streamed += 1
                waited = (first_token or ended) - sent
                if first_token is not None and waited > self.slow_s:
                    self._cut(sent, f"replies wait {waited:.0f} s for their first token")
                else:
                    self._streak += 1
                    if self._slow_start and self._streak >= self.limit and self.limit < self.max_limit:
                        self._streak = 0
                        self.limit = min(self.max_limit, 2 * self.limit)
                    elif self._streak >= max(self._grow_after, 2 * self.limit) and self.limit < self.max_limit:
                        self._streak = 0
                        self.limit += 1
            elif outcome == "timeout":
                self.timeouts += 1
                self._cut(sent, "a request timed out")
            elif outcome == "busy":
                self._cut(sent, "it answered 429/503, busy")
            self._cond.notify_all()

    def _cut(self, sent: float, why: str) -> None:
        self._streak = 0
        self._slow_start = False
        if sent < self._cut_at:
            return  # sent before the last cut: the same congestion, already answered
        self._cut_at = time.monotonic()
        self._grow_after = min(2 * self._grow_after, 4096)
        new = max(1, self.limit // 2)
        if new < self.limit:
            self._notes.append(f"{self.name} is slow ({why}): {self.limit} -> {new} requests in flight")
            self.limit = new
        else:
            self._notes.append(
                f"{self.name} is slow ({why}) with one request in flight: it may be busy with other work"
            )

    def note(self, text: str) -> None:
        """Something map_chat should log."""
        with self._cond:
            self._notes.append(text)

    def take_notes(self) -> list[str]:
        with self._cond:
            notes, self._notes = self._notes, []
            return notes

    def summary(self, left: int | None = None) -> str | None:
        """What the server's pace allows, in words; None before the first reply."""
        with self._cond:
            if not self.replies or self._first_sent is None or self._last_end is None:
                return None
            elapsed = max(self._last_end - self._first_sent, 1e-6)
            per_min = self.replies / elapsed * 60
            latency = self._latency_s / self.replies
            at_once = self._work_s / elapsed if self._streamed else None
            each = self._work_s / self._streamed if self._streamed else latency
        parts = [f"{self.name} answers"]
        if at_once is not None:
            parts.append(f"~{max(at_once, 0.1):.1f} request(s) at a time, ~{each:.1f} s of generation each,")
        parts.append(f"~{per_min:.1f} replies/min ({latency:.1f} s per reply as we see it, {self.limit} in flight)")
        text = " ".join(parts)
        if left:
            minutes = left / per_min
            text += f": {left} items left ≈ {minutes:.0f} min" if minutes >= 1 else f": {left} items left ≈ <1 min"
        return text


class OpenAIChatClient:
    """A client of an OpenAI-compatible `/chat/completions` endpoint (streamed replies)."""

    cancellable = True  # chat() takes cancel=; map_chat aborts abandoned requests with it

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "",
        timeout_s: float = 60.0,
        max_retries: int = 3,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        stream: bool = True,
        concurrency: int = 8,
        deadline_s: float | None = None,
    ):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s  # silence: no byte for this long ends an attempt
        # The whole of one attempt, a net under trickling servers; generous, since streamed replies
        # of max_tokens may take minutes on a slow server.
        self.deadline_s = deadline_s if deadline_s is not None else max(600.0, 10 * timeout_s)
        self.max_retries = max_retries
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.backoff_s = backoff_s
        self._sleep = sleep
        self.stream = stream  # switched off for good when the server does not stream
        self._stream_usage = stream  # ask for token usage in the stream (`stream_options`)
        self.pace = Pace(concurrency, slow_s=timeout_s / 2, name=f"server at {http.display(base_url)}")

    def _body(self, messages: list[dict]) -> bytes:
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if self.stream:
            body["stream"] = True
            if self._stream_usage:
                body["stream_options"] = {"include_usage": True}
        return json.dumps(body, ensure_ascii=False).encode()

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _once(self, messages: list[dict], cancel: http.Cancel | None) -> Reply:
        """One attempt; raises _Retry for what a retry may fix, _Fallback to ask again without
        streaming, LLMError for what it cannot."""
        first: list[float] = []  # when the first token came (streamed replies)
        outcome = "error"
        try:
            sent = self.pace.acquire(cancel)
        except http.Cancelled:
            raise LLMError(t("{name}: cancelled", name=self.url)) from None
        try:
            with http.stream(
                "POST",
                self.url,
                headers=self._headers(),
                body=self._body(messages),
                timeout=self.timeout_s,
                deadline=self.deadline_s,
                cancel=cancel,
            ) as reply:
                if reply.status >= 400:
                    if reply.status in (429, 503):
                        outcome = "busy"  # the server says it is overloaded: back off as from a timeout
                    self._status_error(reply)
                if self.stream and reply.content_type == "text/event-stream":
                    result = self._read_stream(reply, first)
                    reply.finish()  # the end of the stream: keeps the connection for the next request
                else:
                    result = self._parse(reply.read())
                    if self.stream:  # the server answered a whole reply: ask for whole replies from now on
                        self.stream = False
                        self.pace.note(
                            f"{self.pace.name} does not stream: asking for whole replies, each "
                            f"within timeout_s ({self.timeout_s:g} s)"
                        )
            outcome = "ok"
            return result
        except http.Cancelled:
            raise LLMError(t("{name}: cancelled", name=self.url)) from None
        except http.Timeout as e:
            outcome = "timeout"
            raise _Retry(str(e)) from None
        except http.HTTPError as e:
            if e.retryable:
                raise _Retry(str(e)) from None
            raise LLMError(str(e), fatal=True) from None
        finally:
            self.pace.release(sent, first[0] if first else None, outcome)

    def _status_error(self, reply: http.Reply) -> None:
        try:
            detail = reply.read()[:2000].decode("utf-8", "replace").strip()
        except http.HTTPError:
            detail = ""
        code = reply.status
        if code in (401, 403):
            raise LLMError(
                t(
                    "{url}: HTTP {code} (unauthorized): check the key in ${env}",
                    url=self.url,
                    code=code,
                    env=self.api_key_env,
                ),
                fatal=True,
            )
        if code == 404:
            raise LLMError(
                t(
                    "{url}: HTTP 404: no such endpoint or model {model!r}: {detail}",
                    url=self.url,
                    model=self.model,
                    detail=detail[:200],
                ),
                fatal=True,
            )
        if code in (400, 422) and "stream" in detail.lower() and self.stream:
            if self._stream_usage and "stream_options" in detail:
                self._stream_usage = False  # a server that streams but knows no stream_options
            else:
                self.stream = False
                self.pace.note(f"{self.pace.name} refused to stream ({detail[:80]}): asking for whole replies")
            raise _Fallback(detail[:200])
        if code in RETRY_STATUS:
            wait, asked = http.retry_after(reply), http.retry_after(reply, most=None)
            if wait is not None and asked is not None and asked > wait:
                self.pace.note(f"{self.pace.name} asked to wait {asked:.0f} s (Retry-After): waiting {wait:g} s")
            raise _Retry(f"HTTP {code} {detail[:120]}", wait=wait)
        raise LLMError(t("{url}: HTTP {code}: {detail}", url=self.url, code=code, detail=detail[:200]))

    @staticmethod
    def _read_stream(reply: http.Reply, first: list[float]) -> Reply:
        """Collect a streamed reply: `data: {json}` events until `[DONE]` (or a finished choice and the end)."""
        parts: list[str] = []
        usage: dict = {}
        finished = False
        for line in reply.iter_lines():
            if not line.startswith(b"data:"):
                continue  # comments, `event:` lines, blank separators
            data = line[5:].strip()
            if data == b"[DONE]":
                finished = True
                break
            try:
                event = json.loads(data)
            except ValueError:
                raise _Retry(t("malformed stream event: {data!r}", data=data[:120])) from None
            if not isinstance(event, dict):
                raise _Retry(t("malformed stream event: {data!r}", data=data[:120]))
            if event.get("error"):
                raise _Retry(t("the server reported an error mid-stream: {error}", error=str(event["error"])[:200]))
            if isinstance(event.get("usage"), dict):
                usage = event["usage"]
            for choice in event.get("choices") or []:
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
                content = delta.get("content")
                if isinstance(content, str) and content:
                    if not first:
                        first.append(time.monotonic())
                    parts.append(content)
                if choice.get("finish_reason"):
                    finished = True
        if not finished:
            raise _Retry(t("the stream ended before the reply was finished ({n} pieces in)", n=len(parts)))
        return Reply("".join(parts), int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))

    @staticmethod
    def _parse(raw: bytes) -> Reply:
        """A whole (non-streamed) reply."""
        try:
            data = json.loads(raw)
            text = data["choices"][0]["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise _Retry(t("malformed reply ({reason}): {raw!r}", reason=e, raw=raw[:120])) from None
        usage = data.get("usage") or {}
        return Reply(text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))

    def chat(self, messages: list[dict], cancel: http.Cancel | None = None) -> Reply:
        """Send one chat request, retrying with exponential backoff and jitter; raise LLMError at the end."""
        last = ""
        attempt = 0
        while True:
            if cancel is not None and cancel.cancelled:
                raise LLMError(t("{name}: cancelled", name=self.url))
            asked = None
            try:
                return self._once(messages, cancel)
            except _Fallback:
                continue  # the same attempt, asked the way the server understands
            except _Retry as e:
                last = str(e)
                asked = e.wait
            if attempt >= self.max_retries:
                break
            delay = self.backoff_s * (2**attempt) * (0.5 + random.random())
            if asked is not None:
                delay = max(delay, asked)  # the server said when it can take the request again
            attempt += 1
            if cancel is not None:
                if cancel.wait(delay):
                    raise LLMError(t("{name}: cancelled", name=self.url))
            else:
                self._sleep(delay)
        raise LLMError(t("{url}: gave up after {n} attempts: {last}", url=self.url, n=self.max_retries + 1, last=last))


# _Retry and _Fallback are control flow inside OpenAIChatClient.chat, never raised out of it (it turns
# them into another attempt or an LLMError): not FtmodelErrors, so no `except FtmodelError` can catch
# one by mistake (tests/engine/test_errors.py lists them as private).
class _Retry(Exception):
    """A failure worth retrying; `wait`: the seconds the server asked for (Retry-After), if any."""

    def __init__(self, message: str, *, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


class _Fallback(Exception):
    """The server refused a streaming option: ask again without it."""


class HFChatClient:
    """A local model directory answering chat messages with transformers (one request at a time)."""

    def __init__(
        self,
        model_dir: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        device: str = "cpu",
        trust_remote_code: bool = False,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=trust_remote_code).to(device)
        self.model.eval()
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._lock = threading.Lock()  # one generate at a time: the model is not re-entrant

    def chat(self, messages: list[dict]) -> Reply:
        """Generate a reply to the messages with the local model."""
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        sample = self.temperature > 0
        with self._lock, self._torch.no_grad():
            out = self.model.generate(
                **enc,
                max_new_tokens=self.max_tokens,
                do_sample=sample,
                temperature=self.temperature if sample else None,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        new = out[0, enc["input_ids"].shape[1] :]
        return Reply(self.tokenizer.decode(new, skip_special_tokens=True), enc["input_ids"].shape[1], len(new))


def check_service(service, section: str) -> None:
    """Fail early on a teacher/judge that cannot work: no model name, or a missing local model dir."""
    from ftmodel.context import StageError

    if service.backend == "openai" and not service.model:
        raise StageError(t("{section}.model: name the model served at {url}", section=section, url=service.base_url))
    if service.backend == "hf" and not (Path(service.model).expanduser() / "config.json").exists():
        raise StageError(
            t(
                "{section}.model: {model} is not a local model directory",
                section=section,
                model=service.model or t("(empty)"),
            )
        )


def make_client(service, *, device: str = "cpu", trust_remote_code: bool = False) -> ChatClient:
    """Build the client a [distill] or [judge] section describes."""
    if service.backend == "openai":
        return OpenAIChatClient(
            service.base_url,
            service.model,
            api_key_env=service.api_key_env,
            timeout_s=service.timeout_s,
            max_retries=service.max_retries,
            max_tokens=service.max_tokens,
            temperature=service.temperature,
            concurrency=service.concurrency,
        )
    if service.backend == "hf":
        return HFChatClient(
            service.model,
            max_tokens=service.max_tokens,
            temperature=service.temperature,
            device=device,
            trust_remote_code=trust_remote_code,
        )
    raise ValueError(f"no chat client for backend {service.backend!r}")


def map_chat(
    client: ChatClient,
    items: Iterable,
    to_messages: Callable[[object], list[dict]],
    *,
    concurrency: int,
    log: Callable[[str], None] | None = None,
) -> Iterator[tuple[object, Reply | None, LLMError | None]]:
    """Ask about every item with at most `concurrency` requests in flight; yield (item, reply, error)
    as each finishes. Items are submitted lazily, so a stop between results leaves little in flight;
    requests still under way when the caller stops are cancelled (their connections closed).
    With `log`, say how the server copes: cuts in concurrency and what its pace allows."""
    total = len(items) if hasattr(items, "__len__") else None
    items = iter(items)
    cancel = http.Cancel()
    pace: Pace | None = getattr(client, "pace", None)
    call = (lambda m: client.chat(m, cancel=cancel)) if getattr(client, "cancellable", False) else client.chat
    pool = ThreadPoolExecutor(max_workers=concurrency)
    pending = {}
    handled = 0
    reported = [None]  # monotonic time of the last pace report

    def submit_next() -> bool:
        try:
            item = next(items)
        except StopIteration:
            return False
        pending[pool.submit(call, to_messages(item))] = item
        return True

    def say_pace(final: bool = False) -> None:
        if log is None or pace is None:
            return
        for note in pace.take_notes():
            log(note)
        now = time.monotonic()
        due = (
            (pace.replies >= min(4, total or 4) and reported[0] is None)
            or (reported[0] is not None and now - reported[0] >= PACE_REPORT_S)
            or (final and reported[0] is None)
        )
        summary = pace.summary(total - handled if total is not None else None) if due else None
        if summary:
            reported[0] = now
            log(summary)

    try:
        for _ in range(concurrency):
            if not submit_next():
                break
        while pending:
            finished, _ = wait(pending, timeout=NOTE_POLL_S, return_when=FIRST_COMPLETED)
            say_pace()  # also while nothing finishes: a slow server is reported as it happens
            for done in finished:
                item = pending.pop(done)
                handled += 1
                try:
                    yield item, done.result(), None
                except LLMError as e:
                    yield item, None, e
                submit_next()
        say_pace(final=True)
    finally:
        if pending:
            cancel.cancel()  # abandoned: close their connections, wake their backoff sleeps
        pool.shutdown(wait=True, cancel_futures=True)
