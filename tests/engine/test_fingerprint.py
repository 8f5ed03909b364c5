"""Fingerprints and reuse on the stdlib stages (distill, filter): same inputs reuse, changed inputs or
changed shared outputs run, a missing input never reuses, lineage names what a run consumed."""

import json
from pathlib import Path

from ftmodel import config as config_mod
from ftmodel.fingerprint import compute, find_reusable, hash_path, model_identity
from ftmodel.launcher import stage_contract
from tests.conftest import DEFAULT_CONFIG, cli, read_state
from tests.engine.test_cli_and_launcher import prepared_workspace

OFF = ("--set", "wandb.enabled=false")


def runs_of(ws: Path, stage: str) -> list[Path]:
    return sorted(p for p in (ws / "runs").iterdir() if p.name.startswith(stage + "-"))


def test_same_inputs_reuse_the_finished_run_and_force_reruns(tmp_path):
    ws = prepared_workspace(tmp_path, n_train=40)
    assert cli("distill", "--workspace", str(ws), *OFF).returncode == 0
    (first,) = runs_of(ws, "distill")
    state = read_state(first)
    assert len(state["fingerprint"]["digest"]) == 64 and state["fingerprint"]["outputs"]["data/distilled.jsonl"]
    assert state["fingerprint"]["parts"]["inputs"]["data/raw/train.jsonl"] == hash_path(ws / "data/raw/train.jsonl")
    res = cli("distill", "--workspace", str(ws), *OFF)
    assert res.returncode == 0 and f"distill: reusing {first.name} (same inputs)" in res.stdout
    assert runs_of(ws, "distill") == [first] and len(read_state(first)["reused_by"]) == 1
    # a key distill reads changes the fingerprint; a key it does not read (sft.*) does not
    assert "reusing" in cli("distill", "--workspace", str(ws), *OFF, "--set", "sft.max_steps=3").stdout
    res = cli("distill", "--workspace", str(ws), *OFF, "--force")
    assert res.returncode == 0 and "reusing" not in res.stdout and len(runs_of(ws, "distill")) == 2


def test_changed_shared_output_is_rebuilt_not_reused(tmp_path):
    ws = prepared_workspace(tmp_path, n_train=60)
    assert cli("distill", "--workspace", str(ws), *OFF, "--set", "distill.builtin_error_rate=0.4").returncode == 0
    assert cli("filter", "--workspace", str(ws), *OFF).returncode == 0
    made_by_a = (ws / "data/sft.jsonl").read_text()
    assert cli("filter", "--workspace", str(ws), *OFF, "--set", "filter.require_correct=false").returncode == 0
    assert (ws / "data/sft.jsonl").read_text() != made_by_a
    # Same fingerprint as the first filter, but data/sft.jsonl no longer holds what it made: run again.
    res = cli("filter", "--workspace", str(ws), *OFF)
    assert res.returncode == 0 and "reusing" not in res.stdout, res.stdout
    assert len(runs_of(ws, "filter")) == 3 and (ws / "data/sft.jsonl").read_text() == made_by_a
    # Now the workspace again holds what the first and third made: reused.
    assert "reusing" in cli("filter", "--workspace", str(ws), *OFF).stdout


def test_missing_input_means_run_never_reuse(tmp_path):
    cfg = config_mod.load(DEFAULT_CONFIG)
    ws = tmp_path / "ws"
    fp = compute(stage_contract("sft"), cfg, ws, {})
    assert fp.digest is None and "input unavailable" in fp.missing and "sft.jsonl" in fp.missing
    assert find_reusable(stage_contract("sft"), fp, ws) == (None, fp.missing, None)
    fp = compute(stage_contract("grpo"), cfg, ws, {})
    assert fp.digest is None
    cfg.model.name_or_path = str(tmp_path / "nope")
    (ws / "data").mkdir(parents=True)
    (ws / "data/sft.jsonl").write_text("{}\n")
    assert compute(stage_contract("sft"), cfg, ws, {}).digest is None


def test_base_model_identity_follows_its_files(tmp_path):
    cfg = config_mod.load(DEFAULT_CONFIG)
    tiny = model_identity(cfg)
    cfg.model.tiny_layers += 1
    assert model_identity(cfg) != tiny
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"hidden_size": 8}))
    cfg.model.name_or_path = str(model)
    first = model_identity(cfg)
    (model / "config.json").write_text(json.dumps({"hidden_size": 16}))
    assert model_identity(cfg) != first


def test_lineage_shows_the_chain_to_the_data_hash(tmp_path):
    ws = prepared_workspace(tmp_path, n_train=40)
    assert cli("distill", "--workspace", str(ws), *OFF).returncode == 0
    assert cli("filter", "--workspace", str(ws), *OFF).returncode == 0
    (distill,), (flt,) = runs_of(ws, "distill"), runs_of(ws, "filter")
    assert read_state(flt)["lineage"] == {"data/distilled.jsonl": distill.name}
    res = cli("lineage", flt.name, "--workspace", str(ws))
    lines = res.stdout.splitlines()
    assert res.returncode == 0 and lines[0].startswith(f"filter {flt.name} [finished] fingerprint ")
    assert lines[1].startswith(f"  ← distill {distill.name} [finished]")
    assert lines[2].startswith("    ← data/raw/train.jsonl sha256:")


def test_each_job_declares_its_contract_and_the_readers_know_no_stage_by_name():
    import ftmodel.fingerprint
    import ftmodel.queue
    import ftmodel.workspace
    from ftmodel import workspace
    from ftmodel.launcher import job_modules
    from ftmodel.words import JOBS, STAGES

    modules = job_modules()
    assert sorted(modules) == sorted(JOBS)
    spelled = {workspace.RAW_DIR, workspace.RAW_TRAIN, workspace.RAW_EVAL, workspace.DISTILLED, workspace.SFT_DATA}
    for name, module in modules.items():
        contract = module.CONTRACT
        assert contract.stage == name and callable(module.preflight) and callable(module.run)
        assert set(contract.inputs) | set(contract.shared_outputs) <= spelled  # one spelling: workspace.py's
        assert contract.reusable or not (contract.inputs or contract.reads)
    # What fingerprints, locks and the queue know of a stage comes from its contract, not from tables of names.
    for reader in (ftmodel.fingerprint, ftmodel.workspace, ftmodel.queue):
        text = Path(reader.__file__).read_text(encoding="utf-8")
        assert not [s for s in STAGES if f'"{s}"' in text], reader.__name__
