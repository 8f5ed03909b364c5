"""Evaluation: batched, left-padded greedy generation vs one prompt at a time, side by side on the
same model and questions; checks the outputs are identical and prints the speed-up.

    python -m bench.eval_batching --workspace W [--adapter RUN|DIR] [--n 200] [--batch-size 50]

W needs a prepared eval split and an SFT (or GRPO) adapter, e.g. after `ftmodel pipeline`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workspace", required=True)
    p.add_argument("--config", default=str(Path(__file__).resolve().parent.parent / "configs" / "default.toml"))
    p.add_argument("--adapter", help="run id or adapter dir (default: the latest SFT adapter)")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=50)
    a = p.parse_args()

    from ftmodel import config as config_mod
    from ftmodel.context import StageContext
    from ftmodel.evaluation import eval_questions, generate
    from ftmodel.models import find_adapter, load_adapter_model
    from ftmodel.rundir import create_run
    from ftmodel.workspace import Workspace

    ws = Workspace(Path(a.workspace))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, bs in (("batched", a.batch_size), ("one at a time", 1)):
            cfg = config_mod.load(a.config, [f"eval.batch_size={bs}", f"eval.num_samples={a.n}"])
            run = create_run(tmp, "evaluate", config_toml="", argv=[])
            ctx = StageContext(run=run, cfg=cfg, ws=ws, stage="evaluate")
            ctx.log = lambda msg: None
            model, tokenizer, _ = load_adapter_model(find_adapter(ws, a.adapter, "sft"), cfg)
            questions = eval_questions(ctx)
            start = time.perf_counter()
            outputs = generate(ctx, model, tokenizer, questions)
            results[label] = (time.perf_counter() - start, outputs)
            print(f"{label:14} batch {bs:3}: {len(outputs)} answers in {results[label][0]:6.2f} s", flush=True)
    (t_b, out_b), (t_1, out_1) = results["batched"], results["one at a time"]
    same = sum(x == y for x, y in zip(out_b, out_1))
    print(f"speed-up batched vs one at a time: {t_1 / t_b:.1f}x; identical outputs: {same}/{len(out_b)}")


if __name__ == "__main__":
    main()
