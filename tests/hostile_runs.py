"""A workspace of malformed and hostile run directories: what a diverged run, a model, a dataset or a
hand-edited file can leave behind. The console and the CLI must show all of it and never fall over.

Every text field holds HOSTILE: terminal control sequences (clear screen, retitle the window, a C1
CSI, a bidi override), a lone surrogate, markup that would not parse, and Chinese.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.tui.fake_runs import DEFAULT_CONFIG, make_run, sft_rows

HOSTILE = "esc\x1b[2J bel\x07 osc\x1b]0;pwned\x07 c1\x9b31m bidi\u202eevil nul\x00 del\x7f [/] [b]x[/b] 中文"
SURROGATE = "\ud800"  # JSON may hold one ("\\ud800"); a UTF-8 terminal write of it would raise

# What must never reach the rendered screen: C0 controls but the newline, DEL, C1, bidi controls,
# line separators and lone surrogates.
RAW_CONTROL = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)

NAN, INF = float("nan"), float("inf")

DIVERGED = "sft-20260101-000000-0001"  # a finished SFT run whose loss went NaN and grad norm inf
ODD_NAME = "sft-20260101-000001-\x1b[2J\u202e[b]odd"  # a run directory named with control characters
ABSURD = "grpo-20260101-000002-0001"  # state.json with absurd numbers, completions full of escapes
RESULTS = "evaluate-20260101-000003-0001"  # an eval report with hostile keys and wrong types
ABLATION = "ablation-20260101-000004-0001"  # an ablation summary with hostile names


def diverged_rows(n: int = 40, from_step: int = 10) -> list[dict]:
    """SFT rows whose loss is NaN and grad norm inf from `from_step` on (a learning rate of 1.0)."""
    rows = sft_rows(n)
    for row in rows[from_step - 1 :]:
        row["loss"], row["grad_norm"] = NAN, INF
    return rows


def metrics_bytes() -> bytes:
    """A metrics.jsonl with everything wrong at once, in the two ways NaN gets written."""
    rows = diverged_rows()
    lines = [json.dumps(r).encode() for r in rows[:20]]  # Python's bare NaN / Infinity tokens (old files)
    strict = [dict(r, loss="NaN", grad_norm="Infinity") for r in rows[20:30]]  # the strict strings (now)
    lines += [json.dumps(r).encode() for r in strict]
    lines += [
        json.dumps({"step": 31, "loss": 1e308, "learning_rate": -1e308, "grad_norm": "-Infinity"}).encode(),
        json.dumps({"step": 32, "loss": "high", "grad_norm": [1, 2], "learning_rate": None, "epoch": True}).encode(),
        json.dumps({"step": 5, "loss": 0.5, "note": HOSTILE}).encode(),  # the step goes backwards
        json.dumps({"step": 5, "loss": 0.6}).encode(),  # and repeats
        json.dumps({"step": "33", "loss": 0.1}).encode(),  # a step that is text
        json.dumps({"step": 10**400, "loss": 0.1, "big": 10**400}).encode(),  # an int beyond any float
        json.dumps([1, 2, 3]).encode(),  # not an object
        b'{"step": 34, "loss": \xff\xfe 0.1}',  # not UTF-8
        b"",
        json.dumps({"step": 35, "loss": 0.2, HOSTILE: 1.0}).encode(),  # a metric named with escapes
        json.dumps({"step": 36, "reward": 10**400, "answer_accuracy": 10**400}).encode(),  # the last ones
    ]
    return b"\n".join(lines) + b'\n{"step": 37, "loss": 0.'  # a torn last line


def log_bytes() -> bytes:
    return (
        "loading\n"
        f"{HOSTILE}\n"
        "progress 10%\r progress 50%\r progress 100%\n"
        "\x1b]0;pwned\x07title set\n"
        "\x9b2J c1 clear\n"
        "right-to-left \u202eevil\n"
    ).encode("utf-8", "surrogatepass") + b"bad bytes \xff\xfe\x80 end\n"


def completions_text() -> str:
    rows = [
        {
            "step": 7,
            "question": f"Q {HOSTILE}",
            "answer": f"A {HOSTILE}",
            "qtype": f"tf{HOSTILE}",
            "completion": f"<think>\x1b[2J{HOSTILE}</think><answer>{SURROGATE}</answer>",
            "rewards": {"format_reward": NAN, "accuracy_reward": INF, "judge_reward": 10**400, "x": [1], "y": "high"},
        },
        {"step": "8", "question": None, "answer": 3, "qtype": ["mc"], "completion": {"a": 1}, "rewards": "none"},
        {"step": 10**30, "question": "q", "answer": "a", "qtype": "mc", "completion": "ok", "rewards": {}},
    ]
    return "".join(json.dumps(r) + "\n" for r in rows) + "not json\n"


def alerts_bytes() -> bytes:
    """An alerts.jsonl as a diverged run, a foreign tool or a crash may leave it: text with escapes in
    the rule, message fields and log tail, NaN evidence, wrong types, lines that are no alert, a torn end."""
    alert = {"stage": "sft", "step": 10, "time": 1764000010.0, "values": {"loss": "NaN"}, "params": {"value": "NaN"}}
    lines = [
        {**alert, "rule": "nonfinite_loss", "key": "a1", "params": {"value": HOSTILE, "step": HOSTILE}},
        {**alert, "rule": HOSTILE, "key": "a2", "source": HOSTILE, "log_tail": [HOSTILE, 7]},
        {**alert, "rule": "stall", "key": "a3", "step": "ten", "time": INF, "values": [NAN], "params": 3},
        [HOSTILE],
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    return text.encode() + b"\xff not json\n" + b'{"rule": "stall", "key": "torn'


def make_hostile_workspace(ws: Path) -> Path:
    """Write the hostile workspace; return the path of a config whose values hold escapes too."""
    path = make_run(
        ws,
        DIVERGED,
        "sft",
        "finished",
        progress=(40, 40),
        error=HOSTILE,
        files={"eval_sft.json": {"total": 1, "per_qtype": {HOSTILE: {"total": NAN, "format_accuracy": "x"}}}},
    )
    (path / "metrics.jsonl").write_bytes(metrics_bytes())
    (path / "stage.log").write_bytes(log_bytes())
    (path / "alerts.jsonl").write_bytes(alerts_bytes())
    (path / "config.toml").write_text('[wandb]\nproject = "p\\u001b[2J\\u202e"\n[grpo]\nbeta = 0.04\n')
    state = json.loads((path / "state.json").read_text())
    state["current"] = HOSTILE
    (path / "state.json").write_text(json.dumps(state))

    odd = make_run(ws, ODD_NAME, "sft", "failed", exit_code=1, error=HOSTILE, metrics=sft_rows(5), log=[HOSTILE])
    offline = odd / "wandb" / "offline-run-20260101_000001-abc"
    offline.mkdir(parents=True)
    (offline / "run-abc.wandb").write_bytes(b"\x00" * 64)
    ledger = ws / ".wandb" / "sync_ledger.json"
    ledger.parent.mkdir(parents=True, exist_ok=True)
    key = offline.relative_to(ws).as_posix()
    ledger.write_text(json.dumps({"version": 1, "runs": {key: {"state": "failed", "reason": HOSTILE}}}))

    absurd = make_run(ws, ABSURD, "grpo", "running", files={"completions.jsonl": completions_text()})
    state = json.loads((absurd / "state.json").read_text())
    state.update(
        state=f"weird{HOSTILE}",  # a state no one knows
        stage="grpo",
        created=1e308,
        started=NAN,
        ended=INF,
        exit_code=10**30,
        progress={"step": 10**30, "total": 10**31},
        error=HOSTILE + SURROGATE,
    )
    (absurd / "state.json").write_text(json.dumps(state))
    rows = [{"step": i, "reward": NAN if i % 2 else 1e300, "kl": -INF, "time": NAN} for i in range(6)]
    (absurd / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (absurd / "stage.log").write_text(HOSTILE + SURROGATE + "\n", encoding="utf-8", errors="surrogatepass")

    make_run(
        ws,
        RESULTS,
        "evaluate",
        "finished",
        files={
            "eval_grpo.json": {
                "total": 10**400,
                "format_accuracy": NAN,
                "answer_accuracy": 1e308,
                "majority_baseline": HOSTILE,
                "per_qtype": {HOSTILE: {"total": 3, "answer_accuracy": INF}, "list": [1, 2], "mc": "x"},
            },
            "eval_sft.json": {"total": 5, "per_qtype": ["not", "a", "dict"]},
            f"{HOSTILE[:8]}.bin": "artifact named with escapes",
        },
    )
    make_run(
        ws,
        ABLATION,
        "ablation",
        "finished",
        files={
            "ablation_summary_20260101.json": {
                "variants": {
                    "base": {"format_accuracy": NAN, "answer_accuracy": 0.1, "per_qtype": {HOSTILE: {"total": INF}}},
                    f"sft{HOSTILE}": {"format_accuracy": 1e308, "answer_accuracy": "x", "per_qtype": {}},
                },
                "table": {"columns": [HOSTILE, "n"], "rows": [[HOSTILE, NAN], "not a row"]},
            }
        },
    )

    queue = ws / "queue"
    queue.mkdir(parents=True)
    job = {"id": "job-20260101-000000-abcd", "stage": "sft", "state": "failed", "attempts": 1, "args": {}}
    (queue / "queue.json").write_text(
        json.dumps({"version": 1, "paused": True, "jobs": [dict(job, label=HOSTILE, error=HOSTILE, run_id=ODD_NAME)]})
    )
    sweep = ws / "sweeps" / f"sweep-{HOSTILE[:6]}"
    sweep.mkdir(parents=True)
    (sweep / "sweep.json").write_text(json.dumps({"id": sweep.name, "grid": {HOSTILE: [1]}, "jobs": []}))

    config = ws.parent / "hostile.toml"
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    config.write_text(text.replace('project = "FTModel-Training"', 'project = "FT\\u001b[2J\\u202eevil [/]"'))
    return config
