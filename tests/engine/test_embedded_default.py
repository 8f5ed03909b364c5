"""The embedded default really learns: the whole pipeline on configs/default.toml (the README's
numbers come from the same run). Slow: about five minutes on two cores."""

import json

import pytest

from tests.conftest import DEFAULT_CONFIG, cli, read_state

pytestmark = pytest.mark.slow


@pytest.mark.timeout(3600)  # ~3 minutes alone on 2 cores; far longer when the machine is shared
def test_embedded_pipeline_learns_the_format(tmp_path):
    ws = tmp_path / "ws"
    res = cli("pipeline", "--config", str(DEFAULT_CONFIG), "--workspace", str(ws), timeout=1800,
              env={"WANDB_MODE": "disabled"})
    assert res.returncode == 0, res.stdout[-4000:]
    ablation = next(p for p in sorted((ws / "runs").iterdir()) if read_state(p)["stage"] == "ablation")
    summary = json.loads(next(ablation.glob("ablation_summary_*.json")).read_text())["variants"]
    assert summary["base"]["format_accuracy"] < 0.1
    assert summary["sft_only"]["format_accuracy"] >= 0.9
    assert summary["sft_grpo"]["total"] == summary["sft_only"]["total"] == 200
    print((ablation / "ablation_table.txt").read_text())
