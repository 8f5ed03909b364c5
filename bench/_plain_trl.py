"""Baseline for bench.train_overhead: the same TRL trainer with the same settings, no ftmodel
instrumentation (no callback, no metrics.jsonl, no wandb, no completion recording).

usage: python -m bench._plain_trl sft|grpo WORKSPACE CONFIG OUT_DIR [SFT_ADAPTER] [--set k=v ...]
Prints one JSON line with the trainer's own metrics.
"""

import json
import sys
from pathlib import Path


def main() -> None:
    stage, workspace, config_path, out_dir, *rest = sys.argv[1:]
    overrides = [rest[i + 1] for i, a in enumerate(rest) if a == "--set"]
    positional = [a for i, a in enumerate(rest) if a != "--set" and (i == 0 or rest[i - 1] != "--set")]
    from datasets import Dataset

    from ftmodel import config as config_mod
    from ftmodel.data.loaders import read_jsonl
    from ftmodel.models import load_adapter_model, load_base_model, load_tokenizer, lora_config
    from ftmodel.workspace import Workspace

    cfg = config_mod.load(config_path, overrides)
    ws = Workspace(Path(workspace))
    if stage == "sft":
        from trl import SFTTrainer

        from ftmodel.stages import sft

        base = (
            str(
                next(
                    p
                    for p in ws.models.iterdir()
                    if p.is_dir() and p.name.startswith("tiny-") and ".building" not in p.name
                )
            )
            if cfg.model.name_or_path == "builtin:tiny"
            else cfg.model.name_or_path
        )
        trainer = SFTTrainer(
            model=load_base_model(base, cfg),
            args=sft.trainer_args(cfg, out_dir),
            train_dataset=Dataset.from_list(sft.dataset_rows(read_jsonl(ws.sft_data), cfg.data.system_prompt)),
            processing_class=load_tokenizer(base, cfg),
            peft_config=lora_config(cfg),
        )
    else:
        from trl import GRPOTrainer

        from ftmodel.rewards import accuracy_reward, format_reward
        from ftmodel.stages import grpo

        model, tokenizer, _ = load_adapter_model(Path(positional[0]), cfg, trainable=True)
        g = cfg.grpo
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[format_reward, accuracy_reward],
            args=grpo.trainer_args(cfg, out_dir, [g.format_reward_weight, g.accuracy_reward_weight]),
            train_dataset=Dataset.from_list(grpo.dataset_rows(read_jsonl(ws.raw_train), cfg.data.system_prompt)),
            processing_class=tokenizer,
        )
    result = trainer.train()
    print(
        json.dumps(
            {
                "train_steps_per_second": result.metrics["train_steps_per_second"],
                "train_runtime": result.metrics["train_runtime"],
                "steps": result.global_step,
                "num_tokens": trainer.state.num_input_tokens_seen or None,
            }
        )
    )


if __name__ == "__main__":
    main()
