"""``adaptclip-med dashboard``: Streamlit flags, configuration hand-over, input checks."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from adaptclip_med.cli import dashboard as dashboard_cli
from adaptclip_med.demo import reading_room
from adaptclip_med.demo.bank import DEMO_BANK
from adaptclip_med.review.config import CONFIG_ENV, DashboardConfig


def _app() -> typer.Typer:
    app = typer.Typer()
    dashboard_cli.register(app)
    app.command("noop")(lambda: None)  # keep typer in multi-command mode
    return app


def _run(monkeypatch, args):
    seen = {}

    class FakeServer:
        def __init__(self, cmd, env):
            seen["cmd"] = cmd
            seen["config"] = DashboardConfig.from_json(open(env[CONFIG_ENV]).read())

        def wait(self):
            return 0

    monkeypatch.setattr(dashboard_cli.subprocess, "Popen", FakeServer)
    result = CliRunner().invoke(_app(), ["dashboard", *args])
    return result, seen


def test_streamlit_runs_headless_without_file_watcher_on_the_given_port(monkeypatch, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    result, seen = _run(monkeypatch, ["--data-root", str(data), "--output", str(tmp_path / "out"), "--port", "8765",
                                      "--adapters", "untrained", "--backbone", "adaptclip-tiny-vit",
                                      "--backbone-weights", "random:0", "--window", "brain", "--max-upload-mb", "50"])
    assert result.exit_code == 0, result.output
    cmd = seen["cmd"]
    flags = dict(zip(cmd[5::2], cmd[6::2]))
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("adaptclip_med/dashboard/entry.py")
    assert flags["--server.fileWatcherType"] == "none" and flags["--server.headless"] == "true"
    assert flags["--server.port"] == "8765" and flags["--server.address"] == "127.0.0.1"
    assert flags["--server.maxUploadSize"] == "50"
    config = seen["config"]
    assert config.data_roots == (data.resolve(),) and config.output == (tmp_path / "out").resolve()
    assert config.model_configured and config.scoring.model.backbone.architecture == "adaptclip-tiny-vit" and config.scoring.slicing.window == "brain"
    assert config.max_upload_mb == 50 and not config.show_patient_names


def test_without_adapters_the_dashboard_starts_for_review_only(monkeypatch, tmp_path):
    result, seen = _run(monkeypatch, ["--data-root", str(tmp_path), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert seen["config"].model_configured is False


def test_demo_makes_phantom_data_and_uses_the_demo_model(monkeypatch, tmp_path):
    from adaptclip_med.demo import dataset

    real = dataset.make_ct_demo_dataset
    monkeypatch.setattr(dataset, "make_ct_demo_dataset",
                        lambda out, seed, normals, **kw: real(out, seed, normals, slices=3, size=64, **kw))
    result, seen = _run(monkeypatch, ["--demo", "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    config = seen["config"]
    root = (tmp_path / "out" / "demo_data").resolve()
    assert config.demo and config.model_configured and config.data_roots == (root,)
    assert (root / "study").is_dir() and len(list((root / "normals").iterdir())) == 3
    assert config.scoring.model.weights == "demo" and config.banks_root == (tmp_path / "out" / "banks").resolve()
    # a first-time user can score the demo study few-shot at once: the demo bank is built and selected
    bank = (tmp_path / "out" / "banks" / DEMO_BANK).resolve()
    assert config.scoring.references.bank == str(bank) and (bank / "bank.json").is_file()
    assert json.loads((bank / "bank.json").read_text())["name"] == DEMO_BANK
    # the label map is not offered as a study: it lives beside the data root, not in it
    assert not list(root.rglob("*.nii.gz")) and (tmp_path / "out" / "demo_truth" / "ground_truth_labels.nii.gz").is_file()
    # the lesion study is scored already, few-shot with the demo bank: the demo opens in the reading room
    scored = list((tmp_path / "out" / "studies").glob("*/study.json"))
    assert len(scored) == 1
    report = json.loads(scored[0].read_text())
    assert "LESIONS" in report["review_info"]["description"] and report["scoring"]["reference_bank"]["name"] == DEMO_BANK


def test_a_missing_data_root_is_one_line_error(monkeypatch, tmp_path):
    result, seen = _run(monkeypatch, ["--data-root", str(tmp_path / "nope"), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and "not a folder" in result.output and "cmd" not in seen


def test_config_round_trips_through_json(tmp_path):
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.volume.options import ScoringOptions, SlicingOptions

    scoring = ScoringOptions(model=MethodSpec(image_size=56), slicing=SlicingOptions(window="40,80"))
    config = DashboardConfig((tmp_path,), tmp_path / "o", tmp_path / "b", scoring,
                             results=(tmp_path / "r",), show_patient_names=True)
    assert DashboardConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["scoring"]["slicing"]["window"] == "40,80"


def test_sigterm_stops_the_server_and_returns(tmp_path):
    """A service manager stopping the CLI must not leave Streamlit running."""
    import os
    import sys
    import time

    child = ("import os, signal, time; open(r'%s', 'w').write(str(os.getpid())); time.sleep(0.5); "
             "os.kill(os.getppid(), signal.SIGTERM); time.sleep(60)") % (tmp_path / "pid")
    started = time.monotonic()
    assert dashboard_cli._serve([sys.executable, "-c", child], dict(os.environ)) == 0
    assert time.monotonic() - started < 30
    pid = int((tmp_path / "pid").read_text())
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive


# ------------------------------------------------------------------------------ login set-up
def test_a_non_loopback_bind_without_login_is_refused_in_one_line(monkeypatch, tmp_path):
    result, seen = _run(monkeypatch, ["--output", str(tmp_path / "out"), "--address", "0.0.0.0"])
    assert result.exit_code == 2 and "cmd" not in seen
    assert result.output.strip().count("\n") == 0 and "refused without a login" in result.output


def test_local_mode_answers_to_loopback_host_names_only(monkeypatch, tmp_path):
    result, seen = _run(monkeypatch, ["--output", str(tmp_path / "out"), "--port", "8600"])
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert config.login == "local" and "127.0.0.1:8600" in config.allowed_hosts and "localhost:8600" in config.allowed_hosts
    assert "--secrets.files" not in seen["cmd"] and "local, unauthenticated" in result.output


def test_oidc_secrets_go_to_a_private_file_never_the_command_line(monkeypatch, tmp_path):
    import stat

    from adaptclip_med.review.login_config import SECRET_ENV

    monkeypatch.setenv(SECRET_ENV, "s3cret-from-env")
    captured = {}
    real_write = dashboard_cli.write_secrets

    def keep(text, folder):
        path = real_write(text, folder)
        captured.update(text=path.read_text(), mode=stat.S_IMODE(path.stat().st_mode))
        return path

    monkeypatch.setattr(dashboard_cli, "write_secrets", keep)
    result, seen = _run(monkeypatch, ["--output", str(tmp_path / "out"), "--address", "0.0.0.0", "--port", "8443",
                                      "--oidc-metadata-url", "https://login.example/.well-known/openid-configuration",
                                      "--oidc-client-id", "dash", "--public-url", "https://ai.hospital.example",
                                      "--role-claim", "roles", "--sign-off-role", "Radiologist"])
    assert result.exit_code == 0, result.output
    assert "s3cret-from-env" not in " ".join(seen["cmd"]) and "--secrets.files" in seen["cmd"]
    assert captured["mode"] == 0o600 and 'client_secret = "s3cret-from-env"' in captured["text"]
    assert 'redirect_uri = "https://ai.hospital.example/oauth2callback"' in captured["text"]
    config = seen["config"]
    assert (config.login, config.allowed_hosts, config.role_claim, config.sign_off_role) == (
        "oidc", ("ai.hospital.example",), "roles", "Radiologist")


def test_oidc_without_a_secret_and_trusted_header_off_loopback_are_refused(monkeypatch, tmp_path):
    from adaptclip_med.review.login_config import SECRET_ENV

    monkeypatch.delenv(SECRET_ENV, raising=False)
    result, _ = _run(monkeypatch, ["--output", str(tmp_path / "out"), "--oidc-metadata-url", "https://x/.well-known/openid-configuration",
                                   "--oidc-client-id", "dash"])
    assert result.exit_code == 2 and "no OIDC client secret" in result.output
    result, _ = _run(monkeypatch, ["--output", str(tmp_path / "out"), "--address", "10.1.2.3", "--trusted-header", "X-Remote-User"])
    assert result.exit_code == 2 and "forge the header" in result.output
    result, seen = _run(monkeypatch, ["--output", str(tmp_path / "out"), "--address", "unix:///run/adaptclip.sock",
                                      "--trusted-header", "X-Remote-User", "--allowed-host", "ai.hospital.example"])
    assert result.exit_code == 0 and seen["config"].login == "trusted-header"


def test_a_busy_port_is_refused_in_one_line_before_the_demo_builds_anything(monkeypatch, tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        called = []
        monkeypatch.setattr(reading_room, "demo_data_root", lambda output: called.append(output))
        result, seen = _run(monkeypatch, ["--demo", "--output", str(tmp_path / "out"), "--port", str(port)])
    assert result.exit_code != 0 and not seen and not called  # nothing built, no server started
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and f"port {port} on 127.0.0.1 is already in use" in lines[0] and "--port " in lines[0]
    assert "Traceback" not in result.output


def test_version_prints_the_version():
    from adaptclip_med import __version__
    from adaptclip_med.cli.main import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"adaptclip-med {__version__}"


def test_the_installed_command_refuses_a_network_bind_without_login(tmp_path):
    """The real process (no fake server): one line on stderr, exit 2, nothing started or written."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "adaptclip_med.cli.main", "dashboard", "--address", "0.0.0.0",
                          "--output", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--address 0.0.0.0: refused without a login" in lines[0]
    assert not (tmp_path / "out").exists()
