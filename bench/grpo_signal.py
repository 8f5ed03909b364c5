"""GRPO signal per question type: the SFT model's pass@1 (greedy, what evaluation measures) beside
pass@k (any of k samples at GRPO's temperature right) and the share of groups whose k rewards are
all equal (GRPO's advantage is zero there: no gradient from that prompt).

    python -m bench.grpo_signal --workspace W [--adapter RUN|DIR] [--set SECTION.KEY=VALUE ...]
                                [--split train|eval] [--n 24] [--k 8] [--temperature 0.7]

W needs a prepared split and a finished SFT run (e.g. after `ftmodel pipeline`); with `--train` the
prepare..sft stages are run first (reused when already there). A qtype carries signal when pass@k is
well above pass@1 AND its groups are mixed: samples sometimes right, sometimes wrong. Types with
pass@k == 0 (nothing to reinforce) or mean@k == 1 (nothing to fix) give GRPO nothing. k, the
temperature and the reward weights default to the config's [grpo].
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.toml"


def pick_questions(questions: list[dict], n: int, seed: int) -> list[dict]:
    """Up to `n` questions of each qtype, drawn with a fixed seed (the same every run)."""
    by_type: dict[str, list[dict]] = defaultdict(list)
    for q in questions:
        by_type[q["qtype"]].append(q)
    rng = random.Random(seed)
    picked: list[dict] = []
    for qtype in sorted(by_type):
        rows = by_type[qtype]
        picked += rng.sample(rows, min(n, len(rows)))
    return picked


def generate(model, tokenizer, cfg, questions: list[dict], *, k: int, temperature: float, batch: int) -> list:
    """k completions per question: greedy when k == 0 (one each), else sampled at `temperature`."""
    import torch

    from ftmodel.prompts import prompt_messages

    tokenizer.padding_side = "left"
    model.eval()
    out: list[list[str]] = []
    for start in range(0, len(questions), batch):
        chunk = questions[start : start + batch]
        texts = [
            tokenizer.apply_chat_template(
                prompt_messages(q["question"], cfg.data.system_prompt), tokenize=False, add_generation_prompt=True
            )
            for q in chunk
        ]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        sampling = (
            {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0, "num_return_sequences": k}
            if k
            else {"do_sample": False}
        )
        with torch.no_grad():
            ids = model.generate(
                **enc, max_new_tokens=cfg.grpo.max_completion_length, pad_token_id=tokenizer.pad_token_id, **sampling
            )
        decoded = tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        per = max(k, 1)
        out += [decoded[i * per : (i + 1) * per] for i in range(len(chunk))]
    return out


def signal_table(questions, greedy, samples, cfg) -> dict[str, dict]:
    """Per qtype (and overall): pass@1, mean@k, pass@k, share of zero-variance reward groups."""
    from ftmodel.answers import AnswerRules, score_completion

    rules = AnswerRules.from_config(cfg.answers)
    g = cfg.grpo
    rows: dict[str, dict] = defaultdict(lambda: {"n": 0, "pass1": 0, "meank": 0.0, "passk": 0, "zero_var": 0})
    for q, first, group in zip(questions, greedy, samples):
        right1 = score_completion(first[0], q["answer"], q["qtype"], rules)["correct"]
        scored = [score_completion(s, q["answer"], q["qtype"], rules) for s in group]
        rewards = {g.format_reward_weight * s["format_ok"] + g.accuracy_reward_weight * s["correct"] for s in scored}
        right = [s["correct"] for s in scored]
        for key in (q["qtype"], "overall"):
            r = rows[key]
            r["n"] += 1
            r["pass1"] += int(right1)
            r["meank"] += sum(right) / len(right)
            r["passk"] += int(any(right))
            r["zero_var"] += int(len(rewards) == 1)
    return {
        key: {"n": r["n"], **{f: r[f] / r["n"] for f in ("pass1", "meank", "passk", "zero_var")}}
        for key, r in sorted(rows.items(), key=lambda kv: (kv[0] == "overall", kv[0]))
    }


def print_table(table: dict[str, dict], k: int, temperature: float) -> None:
    head = f"{'qtype':18} {'n':>4} {'pass@1':>7} {f'mean@{k}':>7} {f'pass@{k}':>7} {'zero-var':>8}  signal"
    print(f"(greedy pass@1; {k} samples at temperature {temperature}; zero-var: groups with one reward)")
    print(head)
    print("-" * len(head))
    for key, r in table.items():
        sig = "" if key == "overall" else ("yes" if r["passk"] > r["pass1"] and r["zero_var"] < 0.9 else "no")
        print(f"{key:18} {r['n']:4d} {r['pass1']:7.3f} {r['meank']:7.3f} {r['passk']:7.3f} {r['zero_var']:8.3f}  {sig}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workspace", required=True)
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--adapter", help="run id or adapter dir (default: the latest SFT adapter)")
    p.add_argument("--train", action="store_true", help="run prepare..sft first (reused when done)")
    p.add_argument("--split", choices=("train", "eval"), default="train", help="GRPO's prompts or the held-out eval")
    p.add_argument("--n", type=int, default=24, help="questions per qtype")
    p.add_argument("--k", type=int, help="samples per question (default grpo.num_generations)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default grpo.temperature)")
    p.add_argument("--batch", type=int, default=8, help="prompts per generate call")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    if a.train:
        cmd = [sys.executable, "-m", "ftmodel", "pipeline", "--workspace", a.workspace, "--config", a.config]
        cmd += [x for o in a.overrides for x in ("--set", o)] + ["--stages", "prepare,distill,filter,sft"]
        subprocess.run(cmd, check=True)

    import torch

    from ftmodel import config as config_mod
    from ftmodel.data.loaders import read_jsonl
    from ftmodel.models import find_adapter, load_adapter_model
    from ftmodel.workspace import Workspace

    cfg = config_mod.load(a.config, a.overrides)
    ws = Workspace(Path(a.workspace))
    k = a.k or cfg.grpo.num_generations
    temperature = cfg.grpo.temperature if a.temperature is None else a.temperature
    adapter = find_adapter(ws, a.adapter, "sft")
    model, tokenizer, _ = load_adapter_model(adapter, cfg)
    questions = pick_questions(read_jsonl(ws.raw_train if a.split == "train" else ws.raw_eval), a.n, a.seed)
    print(f"adapter {adapter}; {len(questions)} {a.split} questions", flush=True)
    torch.manual_seed(a.seed)
    start = time.perf_counter()
    greedy = generate(model, tokenizer, cfg, questions, k=0, temperature=temperature, batch=a.batch * k)
    samples = generate(model, tokenizer, cfg, questions, k=k, temperature=temperature, batch=a.batch)
    took = time.perf_counter() - start
    print_table(signal_table(questions, greedy, samples, cfg), k, temperature)
    print(f"{len(questions) * (k + 1)} generations in {took:.1f} s")


if __name__ == "__main__":
    main()
