"""Config schema: defaults, errors that name file/line/key, overrides, cross-field rules."""

from pathlib import Path

import pytest

from ftmodel import config
from tests.conftest import DEFAULT_CONFIG, cli


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_embedded_default_and_gpu_example_validate():
    cfg = config.load(DEFAULT_CONFIG)
    assert cfg.model.name_or_path == "builtin:tiny"
    assert cfg.wandb.mode == "offline" and cfg.grpo.beta > 0
    gpu = config.load(DEFAULT_CONFIG.parent / "gpu-qwen2.5-1.5b.toml")
    assert gpu.model.dtype == "bfloat16" and gpu.judge.backend == "openai"


def test_unknown_key_names_line_and_suggests(tmp_path):
    p = write(tmp_path, "[sft]\nlearning_rate = 1e-4\nlearnig_rate = 2e-4\n")
    with pytest.raises(config.ConfigError) as e:
        config.load(p)
    assert f"{p}:3:" in str(e.value) and "sft.learnig_rate" in str(e.value) and "sft.learning_rate" in str(e.value)


def test_unknown_section(tmp_path):
    with pytest.raises(config.ConfigError, match=r":1: unknown section \[sftt\].*\[sft\]"):
        config.load(write(tmp_path, "[sftt]\nx = 1\n"))


def test_wrong_type_names_key_path_and_line(tmp_path):
    p = write(tmp_path, '[model]\n\n[grpo]\nbeta = "high"\n')
    with pytest.raises(config.ConfigError, match=r":4: grpo.beta: expected a number, got 'high'"):
        config.load(p)


def test_bool_is_not_an_int_and_bounds_and_choices(tmp_path):
    with pytest.raises(config.ConfigError, match="sft.batch_size: expected an integer"):
        config.load(write(tmp_path, "[sft]\nbatch_size = true\n"))
    with pytest.raises(config.ConfigError, match="below the minimum"):
        config.load(write(tmp_path, "[sft]\nbatch_size = 0\n"))
    with pytest.raises(config.ConfigError, match="wandb.mode: 'cloud' is not one of"):
        config.load(write(tmp_path, '[wandb]\nmode = "cloud"\n'))


def test_malformed_toml_names_the_line(tmp_path):
    with pytest.raises(config.ConfigError, match=r"invalid TOML: .*line 2"):
        config.load(write(tmp_path, "[sft]\nlearning_rate = = 3\n"))


def test_missing_file():
    with pytest.raises(config.ConfigError, match="config file not found"):
        config.load("/nonexistent/c.toml")


def test_num_generations_must_divide_batch(tmp_path):
    p = write(tmp_path, "[grpo]\nbatch_size = 6\nnum_generations = 4\n")
    with pytest.raises(config.ConfigError, match=r":3: grpo.num_generations \(4\) must divide"):
        config.load(p)


def test_secrets_are_refused(tmp_path):
    assert config.from_dict({"judge": {"api_key_env": "MY_KEY"}}).judge.api_key_env == "MY_KEY"
    with pytest.raises(config.ConfigError, match=r":2: judge.api_key: secrets never go in the config"):
        config.load(write(tmp_path, '[judge]\napi_key = "sk-123"\n'))


def test_overrides_apply_and_are_validated():
    cfg = config.load(DEFAULT_CONFIG, ["sft.learning_rate=2e-4", "wandb.mode=disabled", "data.qtypes=['read_number']"])
    assert cfg.sft.learning_rate == 2e-4 and cfg.wandb.mode == "disabled" and cfg.data.qtypes == ["read_number"]
    with pytest.raises(config.ConfigError, match=r"--set sft.max_steps=abc: sft.max_steps: expected an integer"):
        config.load(DEFAULT_CONFIG, ["sft.max_steps=abc"])
    with pytest.raises(config.ConfigError, match="expected section.key=value"):
        config.load(DEFAULT_CONFIG, ["learning_rate=1"])


def test_every_field_is_documented():
    for section in config.SECTIONS:
        for name, _, _, meta in config.field_specs(section):
            assert meta["doc"], f"{section}.{name} has no doc"


def test_snapshot_round_trips():
    cfg = config.load(DEFAULT_CONFIG)
    again = config.from_dict(__import__("tomllib").loads(config.to_toml(cfg)))
    assert again == cfg


def test_cli_config_check_reports_cleanly(tmp_path):
    bad = write(tmp_path, '[lora]\nr = "big"\n')
    res = cli("config", "check", str(bad))
    assert res.returncode == 2
    assert f"error: {bad}:2: lora.r: expected an integer" in res.stderr
    assert "Traceback" not in res.stderr
    ok = cli("config", "check", str(DEFAULT_CONFIG))
    assert ok.returncode == 0 and "ok" in ok.stdout


@pytest.mark.parametrize(
    "spec",
    [
        "sft.learning_rate=nan",
        "sft.learning_rate=inf",
        "grpo.beta=-inf",
        "sft.learning_rate=1e30",
        "sft.max_steps=10000000000000",
    ],
)
def test_non_finite_and_absurd_numbers_are_refused_from_set(tmp_path, spec):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sft]\nlearning_rate = 1e-4\n")
    with pytest.raises(config.ConfigError, match=spec.split("=")[0]):
        config.load(cfg, [spec])


def test_non_finite_numbers_are_refused_in_toml_with_the_line(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sft]\nbatch_size = 4\nlearning_rate = nan\n")
    with pytest.raises(config.ConfigError, match=r"c.toml:3: sft.learning_rate"):
        config.load(cfg)


def test_grpo_loss_variant_reaches_trl_and_bad_value_names_key(tmp_path):
    from ftmodel.stages.grpo import trainer_args

    cfg = config.load(DEFAULT_CONFIG, ['grpo.loss_type="dr_grpo"', 'grpo.scale_rewards="none"'])
    args = trainer_args(cfg, str(tmp_path), [1.0, 1.0])
    assert (args.loss_type, args.scale_rewards) == ("dr_grpo", "none")
    p = write(tmp_path, '[grpo]\nscale_rewards = "std"\n')
    with pytest.raises(config.ConfigError, match=r":2: grpo.scale_rewards: 'std' is not one of 'group', 'batch'"):
        config.load(p)
