"""The per-client caps' flags: one per ClientLimits field that declares one, each with its environment twin."""

import pytest

from janus_demo.launch.settings import parse_settings
from janus_demo.service.clients import MB, ClientLimits

TWINS = ("JANUS_MAX_BODY_SIZE", "JANUS_JOBS_PER_SESSION", "JANUS_JOBS_PER_IP", "JANUS_UPLOAD_BUDGET")
CLEAN = (*TWINS, "JANUS_MAX_SESSIONS", "JANUS_PROXY_HOPS", "SPACE_ID")


@pytest.fixture
def clean_env(monkeypatch):
    for name in CLEAN:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_are_the_declared_limits(clean_env):
    assert parse_settings([]).client_limits() == ClientLimits()
    assert parse_settings([]).proxy_hops == 0


def test_flags_and_their_variables_set_the_limits(clean_env):
    clean_env.setenv("JANUS_MAX_BODY_SIZE", "2mb")
    clean_env.setenv("JANUS_JOBS_PER_SESSION", "3")
    limits = parse_settings(["--jobs-per-ip", "9", "--upload-budget", "50mb", "--max-sessions", "20"]).client_limits()
    assert (limits.max_body_bytes, limits.jobs_per_session, limits.jobs_per_ip) == (2 * MB, 3, 9)
    assert (limits.upload_bytes_per_window, limits.max_sessions) == (50 * MB, 20)
    assert parse_settings(["--max-body-size", "512kb"]).client_limits().max_body_bytes == 512 * 1024


def test_a_space_counts_the_address_its_proxy_saw(clean_env):
    clean_env.setenv("SPACE_ID", "someone/janus-pro-demo")
    assert parse_settings([]).proxy_hops == 1
    assert parse_settings(["--proxy-hops", "0"]).proxy_hops == 0


@pytest.mark.parametrize("argv", [["--max-body-size", "lots"], ["--jobs-per-session", "0"], ["--upload-budget", "-1"]])
def test_bad_values_are_refused(clean_env, argv, capsys):
    with pytest.raises(SystemExit):
        parse_settings(argv)
    assert "error:" in capsys.readouterr().err
