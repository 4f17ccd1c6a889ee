"""``adaptclip-med node``: help, example config, config errors in one line, status, missing weights."""

from __future__ import annotations


import pytest
from typer.testing import CliRunner

from adaptclip_med.cli.main import app
from adaptclip_med.node.config import ConfigError, load_config
from adaptclip_med.node.store import NodeStore

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_help_names_every_subcommand_and_the_config():
    result = invoke("node", "--help")
    assert result.exit_code == 0
    for word in ("run", "status", "example-config"):
        assert word in result.output
    run_help = invoke("node", "run", "--help").output
    assert "[[allow]]" in run_help and "quiet_seconds" in run_help and "--ae-title" in run_help
    for command in (["node", "run"], ["node", "status"], ["node", "example-config"]):
        text = invoke(*command, "--help").output
        assert "<bool>" not in text and "…" not in text  # the project's help style (tests/cli/test_help.py)


def test_the_example_config_loads_and_flags_override_it(tmp_path):
    path = tmp_path / "node.toml"
    assert invoke("node", "example-config", str(path)).exit_code == 0
    config = load_config(path).with_overrides(ae_title="OTHERAE", port=0, bind="0.0.0.0")
    assert (config.ae_title, config.port, config.bind) == ("OTHERAE", 0, "0.0.0.0")
    assert config.state_dir == tmp_path / "adaptclip-node"  # relative to the file
    assert config.allow[0].ae_title == "ORTHANC" and config.destination.peer.port == 4242
    assert config.scoring_options().model.weights == "demo"
    again = invoke("node", "example-config", str(path))
    assert again.exit_code == 2 and "already exists" in again.output


def test_yaml_configs_work_too(tmp_path):
    path = tmp_path / "node.yaml"
    path.write_text("node: {ae_title: AINODE, port: 104}\nallow: [{ae_title: PACS, host: 127.0.0.1}]\n"
                    "scoring: {adapters: demo, window: brain}\n")
    config = load_config(path)
    assert config.port == 104 and config.allow[0].ae_title == "PACS" and config.destination is None


@pytest.mark.parametrize("text, fragment", [
    ("[node]\nport = 'x'\n", "is not a TCP port"),
    ("[node]\nae_title = 'MUCH-TOO-LONG-AE-TITLE'\n", "is not an AE title"),
    ("[node]\nspeed = 3\n", "unknown key(s) speed"),
    ("[[allow]]\nae_title = 'X'\n", "needs both ae_title and host"),
    ("[destination]\nae_title = 'X'\nhost = 'h'\n", "needs a port"),
    ("[node\n", "not valid TOML"),
])
def test_bad_configs_are_one_line_errors_naming_the_file(tmp_path, text, fragment):
    path = tmp_path / "node.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as caught:
        load_config(path)
    message = str(caught.value)
    assert fragment in message and "node.toml" in message and "\n" not in message
    result = invoke("node", "run", "--config", str(path))
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "Traceback" not in result.output


def test_scoring_names_are_checked(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text("[scoring]\nadapters = 'demo'\nspeed = 2\n")
    result = invoke("node", "run", "--config", str(path))
    assert result.exit_code == 2 and "unknown scoring option(s): speed" in result.output
    path.write_text("[scoring]\nmethod = 'adaptclip'\n")
    result = invoke("node", "run", "--config", str(path))
    assert result.exit_code == 2 and "needs trained weights" in result.output


@pytest.mark.parametrize("scoring", ["adapters = '{missing}'\noffline = true\n",
                                     "method = 'winclip'\noffline = true\n"])  # backbone weights not cached
def test_missing_weights_offline_is_one_line_before_anything_listens(tmp_path, monkeypatch, scoring):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hub"))
    path = tmp_path / "node.toml"
    path.write_text("[node]\nport = 0\nstate_dir = 'state'\n[scoring]\n"
                    + scoring.format(missing=tmp_path / "missing.safetensors"))
    result = invoke("node", "run", "--config", str(path))
    assert result.exit_code == 3 and result.output.count("\n") == 1 and "Traceback" not in result.output
    assert "weights" in result.output or "checkpoint" in result.output
    assert not (tmp_path / "state").exists()


def test_status_shows_counts_and_pseudonymous_rows(tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.99887766554433"
    with NodeStore(tmp_path / "state") as store:
        key = store.record_instance(uid, uid + ".1").study_key
        store.count_skipped("derived SEG object (results are never scored)")
    result = invoke("node", "status", "--state-dir", str(tmp_path / "state"))
    assert result.exit_code == 0, result.output
    assert "1 receiving" in result.output and key in result.output and uid not in result.output
    assert "1 x derived SEG object" in result.output
    as_json = invoke("node", "status", "--state-dir", str(tmp_path / "state"), "--json")
    assert '"receiving": 1' in as_json.output and uid not in as_json.output
    missing = invoke("node", "status", "--state-dir", str(tmp_path / "nothing"))
    assert missing.exit_code == 2 and "no node state here" in missing.output
