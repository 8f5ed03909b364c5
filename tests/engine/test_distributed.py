"""SFT and GRPO with two CPU processes (gloo) through torchrun and accelerate: rank 0 alone
records, every step is logged exactly once, the other rank's output is prefixed in stage.log."""

import pytest

from tests.conftest import SMALL_OVERRIDES, cli, read_metrics, read_state, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    config = write_config(root / "small.toml", {**SMALL_OVERRIDES, "wandb": {"log_interval": 1, "mode": "offline"}})
    ws = root / "ws"
    res = cli(
        "pipeline",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        "--stages",
        "prepare,distill,filter",
        env={"WANDB_MODE": "disabled"},
    )
    assert res.returncode == 0, res.stdout[-3000:]
    return ws, config


def run_dir(ws, res):
    return ws / "runs" / res.stdout.split("run ", 1)[1].split()[0]


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_sft_then_grpo_on_two_processes_log_each_step_once(data_ws, launcher):
    ws, config = data_ws
    flags = [
        "--config",
        str(config),
        "--workspace",
        str(ws),
        "--set",
        f"launch.launcher={launcher}",
        "--set",
        "launch.num_processes=2",
        "--set",
        f"launch.main_process_port={29600 + len(launcher)}",
    ]
    res = cli("sft", *flags, "--set", "sft.max_steps=4", "--set", "sft.batch_size=4")
    assert res.returncode == 0, res.stdout[-4000:]
    sft = run_dir(ws, res)
    state = read_state(sft)
    assert state["state"] == "finished" and state["worker_argv"][2] in (
        "torch.distributed.run",
        "accelerate.commands.launch",
    )
    assert [r["step"] for r in read_metrics(sft) if "loss" in r] == [1, 2, 3, 4]
    log = (sft / "stage.log").read_text()
    assert "[rank 1] rank 1 of 2 started" in log and log.count("adapter saved") == 1
    # GRPO: 4 completions per rank per step, groups of 4 across 2 ranks (batch × ranks divisible).
    res = cli("grpo", *flags, "--sft-run", sft.name, "--set", "grpo.max_steps=2", "--set", "grpo.batch_size=4")
    assert res.returncode == 0, res.stdout[-4000:]
    grpo = run_dir(ws, res)
    rows = [r for r in read_metrics(grpo) if "loss" in r]  # the probe's row at the checkpoint aside
    assert [r["step"] for r in rows] == [1, 2] and all("reward" in r and "kl_divergence" in r for r in rows)
    assert read_state(grpo)["state"] == "finished"
    offline = list((grpo / "wandb").glob("offline-run-*"))
    assert len(offline) == 1  # one wandb run, from rank 0 only


def test_ranks_must_hold_whole_groups(data_ws):
    ws, config = data_ws
    res = cli(
        "grpo",
        "--config",
        str(config),
        "--workspace",
        str(ws),
        "--set",
        "launch.launcher=torchrun",
        "--set",
        "launch.num_processes=3",
        "--set",
        "grpo.batch_size=2",
        "--set",
        "grpo.num_generations=4",
    )
    assert res.returncode == 2 and "× ranks (2 × 1 × 3)" in res.stderr and "(with --set" in res.stderr
