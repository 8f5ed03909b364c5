"""Sweeps: planned and validated point by point before anything is queued, run through the queue with
reuse, and read back as one comparison table (CSV, Markdown, terminal) with the best row marked."""

import json
from pathlib import Path

import pytest

from ftmodel import config as config_mod
from ftmodel.rundir import create_run
from tests.conftest import DEFAULT_CONFIG, SMALL_OVERRIDES, cli, read_state, wait_for, write_config
from tests.engine.test_cli_and_launcher import prepared_workspace
from tests.engine.test_queue import ENV, jobs, settled


def sweep_cli(ws: Path, *args: str, config: Path = DEFAULT_CONFIG):
    return cli("sweep", "--workspace", str(ws), "--config", str(config), *args, env=ENV)


def test_dry_run_prints_every_point_and_its_command_and_queues_nothing(tmp_path):
    ws = tmp_path / "ws"
    res = sweep_cli(
        ws, "--grid", "grpo.beta=0.0,0.04", "--grid", "lora.r=8,16", "--stages", "sft,grpo,evaluate", "--dry-run"
    )
    assert res.returncode == 0, res.stderr
    assert "4 run(s), stages sft,grpo,evaluate" in res.stdout
    assert "grpo.beta=0.04, lora.r=16" in res.stdout
    assert (
        "ftmodel pipeline --stages sft,grpo,evaluate" in res.stdout
        and "--set grpo.beta=0.0 --set lora.r=8" in res.stdout
    )
    assert not (ws / "queue").exists()


@pytest.mark.parametrize(
    "grid, message",
    [
        ("grpo.betta=0.0,0.04", "sweep grid grpo.betta = '0.0': unknown key grpo.betta"),
        ("lora.r=8,sixteen", "sweep grid lora.r = 'sixteen': lora.r: expected an integer, got 'sixteen'"),
        ("grpo.num_generations=4,3", "grid point grpo.num_generations=3: "),  # a rule across fields, per point
    ],
)
def test_a_bad_point_names_key_and_value_and_nothing_is_queued(tmp_path, grid, message):
    ws = tmp_path / "ws"
    res = sweep_cli(ws, "--grid", grid)
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert not (ws / "queue").exists()


def test_sweep_table_in_the_toml_is_validated_and_read(tmp_path):
    path = write_config(tmp_path / "c.toml")
    path.write_text(path.read_text() + '\n[sweep]\nstages = ["filter"]\n"filter.min_chars" = [3, 5]\n')
    assert config_mod.load(path).filter.min_chars == 10  # a run never reads [sweep]
    spec = config_mod.load_sweep(path, ["filter.dedup=true,false"])
    assert spec.stages == ["filter"] and spec.grid == {"filter.min_chars": [3, 5], "filter.dedup": [True, False]}
    bad = tmp_path / "bad.toml"
    bad.write_text(path.read_text().replace('"filter.min_chars" = [3, 5]', '"filter.min_chars" = [3, -1]'))
    with pytest.raises(config_mod.ConfigError, match=r"bad.toml:\d+: sweep grid filter.min_chars = -1: .*below"):
        config_mod.load(bad)


def _fake_evaluate(ws: Path, pipeline_run: str, accuracy: float, per: dict) -> None:
    """An evaluate child with a report, as a finished sweep point leaves it (no model needed)."""
    child = create_run(ws, "evaluate", config_toml="", argv=[])
    child.update_state(state="finished")
    (child.path / "eval_grpo_lora_20260101-000000.json").write_text(
        json.dumps(
            {
                "answer_accuracy": accuracy,
                "format_accuracy": 1.0,
                "per_qtype": {q: {"answer_accuracy": v} for q, v in per.items()},
            },
            ensure_ascii=False,
        )
    )
    run_dir = ws / "runs" / pipeline_run
    state = read_state(run_dir)
    state["children"] = [*state.get("children", []), child.id]
    (run_dir / "state.json").write_text(json.dumps(state))


def test_sweep_runs_through_the_queue_and_one_table_compares_the_points(tmp_path):
    ws = prepared_workspace(tmp_path, n_train=40)
    assert cli("distill", "--workspace", str(ws), env=ENV).returncode == 0
    res = sweep_cli(ws, "--grid", "filter.min_chars=3,5", "--grid", "filter.dedup=true,false", "--stages", "filter")
    assert res.returncode == 0, res.stderr
    sweep_id = res.stdout.split("sweep ", 1)[1].split(":")[0]
    wait_for(lambda: settled(ws), timeout=180, what="the sweep")
    js = list(jobs(ws).values())
    assert len(js) == 4 and all(j["state"] == "done" and j["sweep"] == sweep_id for j in js)
    filters = [p for p in (ws / "runs").iterdir() if p.name.startswith("filter-")]
    assert filters and all(read_state(p)["args"]["sweep"] == sweep_id for p in filters)  # their wandb group
    for j, acc in zip(js, (0.25, 0.5, 0.125, None)):
        if acc is not None:
            _fake_evaluate(ws, j["run_id"], acc, {"利率": acc / 2})
    res = cli("sweep", "show", sweep_id[:14] if len(sweep_id) > 14 else sweep_id, "--workspace", str(ws), env=ENV)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == [
        "best",
        "filter.min_chars",
        "filter.dedup",
        "state",
        "answer_accuracy",
        "format_accuracy",
        "利率/answer_accuracy",
        "run",
    ]
    starred = [line for line in lines[2:6] if line.startswith("*")]
    assert len(starred) == 1 and "0.5000" in starred[0] and "0.2500" in starred[0]
    d = ws / "sweeps" / sweep_id
    csv_rows = (d / "comparison.csv").read_text(encoding="utf-8").splitlines()
    assert len(csv_rows) == 5 and csv_rows[0].startswith("best,filter.min_chars,filter.dedup")
    md = (d / "comparison.md").read_text(encoding="utf-8")
    assert md.count("\n| ") == 5 and "| * |" in md


@pytest.mark.slow
def test_a_2x2_sweep_runs_sft_twice_and_grpo_four_times(tmp_path):
    config = write_config(tmp_path / "small.toml", {**SMALL_OVERRIDES, "wandb": {"enabled": False}})
    ws = tmp_path / "ws"
    res = cli("pipeline", "--config", str(config), "--workspace", str(ws), "--stages", "prepare,distill,filter")
    assert res.returncode == 0, res.stdout[-3000:]
    res = sweep_cli(
        ws,
        "--grid",
        "sft.learning_rate=2e-4,1e-3",
        "--grid",
        "grpo.beta=0.0,0.04",
        "--stages",
        "sft,grpo,evaluate",
        config=config,
    )
    assert res.returncode == 0, res.stderr
    sweep_id = res.stdout.split("sweep ", 1)[1].split(":")[0]
    wait_for(lambda: settled(ws), timeout=1500, interval=1.0, what="the 2x2 sweep")
    assert all(j["state"] == "done" for j in jobs(ws).values()), jobs(ws)
    count = {
        s: len([p for p in (ws / "runs").iterdir() if p.name.startswith(s + "-")]) for s in ("sft", "grpo", "evaluate")
    }
    assert count == {"sft": 2, "grpo": 4, "evaluate": 4}
    res = cli("sweep", "show", sweep_id, "--workspace", str(ws), env=ENV)
    rows = [line for line in res.stdout.splitlines()[2:] if "done" in line]
    assert len(rows) == 4 and sum(line.startswith("*") for line in rows) == 1
    grpo = sorted(p for p in (ws / "runs").iterdir() if p.name.startswith("grpo-"))[-1]
    chain = cli("lineage", grpo.name, "--workspace", str(ws)).stdout
    assert "← sft sft-" in chain and "← filter filter-" in chain


def test_a_sweeps_wandb_runs_share_its_group_and_record_their_lineage(tmp_path):
    """Read back with wandb's own reader: group = the sweep id; config holds fingerprint and lineage."""
    import subprocess
    import sys

    ws = prepared_workspace(tmp_path, n_train=20)
    assert cli("distill", "--workspace", str(ws), "--set", "wandb.enabled=false", env=ENV).returncode == 0
    online = {"WANDB_MODE": "offline"}
    res = cli(
        "sweep",
        "--workspace",
        str(ws),
        "--config",
        str(DEFAULT_CONFIG),
        "--grid",
        "filter.min_chars=3",
        "--stages",
        "filter",
        "--no-start",
        env=online,
    )
    assert res.returncode == 0, res.stderr
    sweep_id = res.stdout.split("sweep ", 1)[1].split(":")[0]
    assert cli("queue", "run", "--workspace", str(ws), env=online).returncode == 0
    (run,) = [p for p in (ws / "runs").iterdir() if p.name.startswith("filter-")]
    (offline,) = (run / "wandb").glob("offline-run-*")
    out = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(offline)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    record = next(json.loads(line)["run"] for line in out.splitlines() if '"type":"run"' in line.replace(" ", ""))
    assert record["run_group"] == sweep_id
    config = record["config"]["update"]
    assert config["ftmodel_fingerprint"] == read_state(run)["fingerprint"]["digest"]
    distill = next(p.name for p in (ws / "runs").iterdir() if p.name.startswith("distill-"))
    assert config["ftmodel_lineage"] == {"data/distilled.jsonl": distill}
