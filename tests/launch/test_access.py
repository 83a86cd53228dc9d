"""Logins, share links and MCP: the rules, the flags' environment twins, and app.py serving behind a login
with a share link that cannot be made (offline)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.serving import free_port

from janus_demo.launch import access
from janus_demo.launch.server import SHARE_FAILED, launch_report
from janus_demo.launch.settings import Settings, parse_settings

ROOT = Path(__file__).resolve().parents[2]
SHARE_ENV = ("GRADIO_SHARE", "JANUS_AUTH", "JANUS_AUTH_FILE", "JANUS_SHARE_WITHOUT_AUTH", "JANUS_MCP")


@pytest.fixture
def clean_env(monkeypatch):
    for name in SHARE_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# --- reading logins --------------------------------------------------------------------------------


def test_parse_login_keeps_colons_in_the_password():
    assert access.parse_login("alice:pa:ss", "--auth") == ("alice", "pa:ss")


@pytest.mark.parametrize("text", ["alice", ":secret", "alice:", "   :x"])
def test_parse_login_refuses_incomplete_logins(text):
    with pytest.raises(access.AccessError, match="--auth: expected USER:PASS"):
        access.parse_login(text, "--auth")


def test_auth_file_skips_blanks_and_comments(tmp_path):
    path = tmp_path / "logins.txt"
    path.write_text("# team\nalice:one\n\n  bob:two:three\n")
    assert access.read_auth_file(str(path)) == [("alice", "one"), ("bob", "two:three")]


def test_auth_file_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "logins.txt"
    path.write_text("alice:one\nbob\n")
    with pytest.raises(access.AccessError, match="line 2"):
        access.read_auth_file(str(path))
    with pytest.raises(access.AccessError, match="cannot read"):
        access.read_auth_file(str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("# nobody\n")
    with pytest.raises(access.AccessError, match="no user:pass"):
        access.read_auth_file(str(tmp_path / "empty.txt"))


def test_logins_from_flag_and_file_add_up(tmp_path):
    path = tmp_path / "logins.txt"
    path.write_text("bob:two\n")
    assert access.read_logins(Settings(auth="alice:one", auth_file=str(path))) == [("alice", "one"), ("bob", "two")]
    assert access.read_logins(Settings()) is None


# --- the rules --------------------------------------------------------------------------------------


LOGIN = [("alice", "one")]


@pytest.mark.parametrize(
    ("settings", "logins", "refused"),
    [
        (Settings(), None, None),
        (Settings(share=True), None, "--share puts the app on a public link"),
        (Settings(share=True), LOGIN, None),
        (Settings(share=True, share_without_auth=True), None, None),
        (Settings(auth="alice:one"), LOGIN, None),
        (Settings(mcp=True), None, None),
        (Settings(mcp=True, auth="alice:one"), LOGIN, "--mcp cannot be combined"),
        (Settings(mcp=True, share=True, share_without_auth=True), None, None),
    ],
)
def test_access_rules(settings, logins, refused):
    problem = access.access_problem(settings, logins)
    assert (problem is None) if refused is None else problem.startswith(refused)
    assert problem is None or "\n" not in problem


def test_sharing_without_a_login_warns():
    warning = access.access_warning(Settings(share=True, share_without_auth=True), None)
    assert "anyone with the link" in warning
    assert access.access_warning(Settings(share=True), LOGIN) is None
    assert access.access_warning(Settings(auth="a:b"), LOGIN) is None


# --- flags and their environment twins -------------------------------------------------------------


def test_environment_twins(clean_env, tmp_path):
    clean_env.setenv("GRADIO_SHARE", "True")
    clean_env.setenv("JANUS_AUTH", "alice:one")
    clean_env.setenv("JANUS_AUTH_FILE", str(tmp_path / "logins.txt"))
    clean_env.setenv("JANUS_SHARE_WITHOUT_AUTH", "yes")
    clean_env.setenv("JANUS_MCP", "1")
    settings = parse_settings([])
    assert settings.share and settings.share_without_auth and settings.mcp
    assert (settings.auth, settings.auth_file) == ("alice:one", str(tmp_path / "logins.txt"))


def test_flags_beat_their_variables(clean_env):
    clean_env.setenv("GRADIO_SHARE", "true")
    clean_env.setenv("JANUS_MCP", "on")
    settings = parse_settings(["--no-share", "--no-mcp"])
    assert not settings.share and not settings.mcp
    assert parse_settings(["--share", "--auth", "bob:two"]).auth == "bob:two"


def test_off_by_default_and_password_kept_out_of_repr(clean_env):
    settings = parse_settings(["--auth", "alice:hunter2"])
    assert not (settings.share or settings.share_without_auth or settings.mcp)
    assert "hunter2" not in repr(settings)


# --- gradio's launch output ------------------------------------------------------------------------


def test_the_launch_report_speaks_of_this_apps_flags():
    local = "http://127.0.0.1:7860/"
    plain = launch_report(Settings(), local, None, on_space=False)
    assert plain.splitlines() == [
        "Running on http://127.0.0.1:7860/ (Ctrl+C to stop)",
        "For a public link, restart with --share and a login (--auth USER:PASS); see --help.",
    ]
    assert "share=True" not in plain
    shared = launch_report(Settings(share=True), local, "https://abc.gradio.live", on_space=False)
    assert "Public link: https://abc.gradio.live" in shared
    assert SHARE_FAILED in launch_report(Settings(share=True), local, None, on_space=False).splitlines()
    assert launch_report(Settings(), local, None, on_space=True).splitlines() == [plain.splitlines()[0]]
    assert "MCP server (streamable HTTP): http://127.0.0.1:7860/gradio_api/mcp/" in launch_report(
        Settings(mcp=True), local, None, on_space=False
    )


# --- app.py end to end -------------------------------------------------------------------------------


def app_env(tiny_dir, **extra) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in SHARE_ENV}
    env.update(JANUS_MODEL=str(tiny_dir), JANUS_DEVICE="cpu", JANUS_QUANTIZATION="none", **extra)
    return env


def test_share_without_a_login_is_refused_in_one_line(tiny_dir):
    run = subprocess.run(
        [sys.executable, "app.py", "--share"],
        cwd=ROOT,
        env=app_env(tiny_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "error: --share puts the app on a public link: add --auth USER:PASS or --auth-file PATH, "
        "or --share-without-auth to let anyone with the link use it."
    ]
    assert "Loading" not in run.stderr, "refuse before loading the model"


@pytest.fixture(scope="module")
def shared_offline_app(tiny_dir, tmp_path_factory):
    """app.py --share --auth with the share server unreachable: a dead proxy stands in for 'offline'."""
    port, logs = free_port(), tmp_path_factory.mktemp("share")
    dead_proxy = "http://127.0.0.1:9"
    env = app_env(
        tiny_dir,
        HTTPS_PROXY=dead_proxy,
        HTTP_PROXY=dead_proxy,
        NO_PROXY="127.0.0.1,localhost",
        GRADIO_TEMP_DIR=str(logs / "gradio"),
    )
    env.pop("GRADIO_SHARE_SERVER_ADDRESS", None)  # else gradio skips the API server and goes straight to frpc
    with open(logs / "out.txt", "w") as out, open(logs / "err.txt", "w") as err:
        process = subprocess.Popen(
            [sys.executable, "app.py", "--share", "--auth", "alice:correct-horse", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_line(logs / "out.txt", "warning: no share link", process, timeout=120)
        yield url, (logs / "out.txt").read_text(), (logs / "err.txt").read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_for_line(path: Path, needle: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in path.read_text():
            return
        assert process.poll() is None, f"app.py exited with {process.returncode}: {path.read_text()[-2000:]}"
        time.sleep(0.5)
    raise AssertionError(f"no {needle!r} within {timeout} s: {path.read_text()[-2000:]}")


def test_offline_share_is_one_line_and_the_app_keeps_serving(shared_offline_app):
    url, out, err = shared_offline_app
    assert SHARE_FAILED in out.splitlines() and f"Running on {url} (Ctrl+C to stop)" in out.splitlines()
    assert "Could not create share link" not in out and "Download this file" not in out and "share=True" not in out
    assert "Traceback" not in err
    assert httpx.get(url + "config", timeout=10).status_code == 401, "the app answers, and asks for the login"


def test_login_refuses_anonymous_and_wrong_clients_and_admits_the_right_one(shared_offline_app, tmp_path):
    from gradio_client import Client

    url, _, _ = shared_offline_app
    for auth in (None, ("alice", "wrong")):
        with pytest.raises(Exception, match="(?i)credentials|login|auth"):
            Client(url, auth=auth, verbose=False, download_files=str(tmp_path))
    client = Client(url, auth=("alice", "correct-horse"), verbose=False, download_files=str(tmp_path))
    assert client.predict(api_name="/model_info")["random_weights"] is True
    client.close()
