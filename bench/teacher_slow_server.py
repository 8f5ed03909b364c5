"""Teacher client against a slow server that answers one request at a time: the old way (whole
replies, fixed concurrency) and the new one (streamed, silence timeout, adaptive concurrency),
side by side on the same questions; prints items back, requests sent and wall time of each.

    python -m bench.teacher_slow_server [--items 12] [--concurrency 8] [--timeout 1.0] [--retries 3]
    python -m bench.teacher_slow_server --base-url http://127.0.0.1:8000/v1 --model NAME  # a real server

Without --base-url it runs tests/fake_openai.py in its one-at-a-time mode: each reply is
`--pieces` pieces generated `--piece-delay` seconds apart, so a whole reply takes longer than the
timeout while a streamed one is never silent that long.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext


def run(label: str, url: str, model: str, a, stream: bool, adaptive: bool) -> dict:
    from ftmodel.llm import OpenAIChatClient, map_chat

    client = OpenAIChatClient(
        url,
        model,
        timeout_s=a.timeout,
        max_retries=a.retries,
        max_tokens=a.max_tokens,
        concurrency=a.concurrency,
        stream=stream,
        backoff_s=0.5,
    )
    if not adaptive:
        client.pace.limit = a.concurrency  # the old client: all in flight at once, never changed
        client.pace._cut = lambda sent, why: None
    questions = [f"What is {i} + {i}? Answer briefly." for i in range(a.items)]
    started = time.monotonic()
    results = list(
        map_chat(
            client,
            questions,
            lambda q: [{"role": "user", "content": q}],
            concurrency=a.concurrency,
            log=lambda line: print(f"  [{label}] {line}", flush=True),
        )
    )
    return {
        "label": label,
        "ok": sum(e is None for _, _, e in results),
        "seconds": time.monotonic() - started,
        "limit": client.pace.limit,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", help="a real OpenAI-compatible server (default: a local one-at-a-time stub)")
    p.add_argument("--model", default="teacher")
    p.add_argument("--items", type=int, default=12)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--timeout", type=float, default=1.0, help="timeout_s of the client")
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=1024)
    p.add_argument("--pieces", type=int, default=40)
    p.add_argument("--piece-delay", type=float, default=0.03)
    a = p.parse_args()

    rows = []
    for label, stream, adaptive in (
        ("old: whole replies, fixed", False, False),
        ("new: streamed, adaptive", True, True),
    ):
        if a.base_url:
            server, url = nullcontext(), a.base_url
        else:
            from tests.fake_openai import FakeOpenAI, Faults

            server = FakeOpenAI(
                faults=Faults(serial=True, piece_chars=1, token_delay_s=a.piece_delay, content="x" * a.pieces)
            )
            url = server.base_url
        with server:
            row = run(label, url, a.model, a, stream, adaptive)
            if not a.base_url:
                row["requests"], row["abandoned"] = len(server.requests), server.abandoned
        rows.append(row)
    print(f"\n{'client':<28} {'items back':>10} {'requests':>9} {'seconds':>8}  in flight at the end")
    for r in rows:
        print(
            f"{r['label']:<28} {r['ok']:>5} / {a.items:<3} {r.get('requests', '-'):>9} {r['seconds']:>8.1f}  "
            f"{r['limit']}"
        )
    old, new = rows
    if old["ok"] and new["ok"]:
        print(f"items per second, new / old: {new['ok'] / new['seconds'] / (old['ok'] / old['seconds']):.1f}x")


if __name__ == "__main__":
    main()
