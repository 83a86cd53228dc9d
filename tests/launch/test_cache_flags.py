"""The cache folder's bound: --cache-size and --cache-files, each with its environment twin."""

import pytest

from janus_demo.launch.settings import parse_settings

TWINS = ("JANUS_CACHE_SIZE", "JANUS_CACHE_FILES")


@pytest.fixture
def clean_env(monkeypatch):
    for name in TWINS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults(clean_env):
    settings = parse_settings([])
    assert (settings.cache_size, settings.cache_files) == ("2gb", 20_000)


def test_flags_and_their_variables(clean_env):
    clean_env.setenv("JANUS_CACHE_SIZE", "500mb")
    clean_env.setenv("JANUS_CACHE_FILES", "300")
    assert (parse_settings([]).cache_size, parse_settings([]).cache_files) == ("500mb", 300)
    settings = parse_settings(["--cache-size", "1gb", "--cache-files", "50"])
    assert (settings.cache_size, settings.cache_files) == ("1gb", 50), "the flag wins"


@pytest.mark.parametrize("argv", [["--cache-size", "lots"], ["--cache-size", "0"], ["--cache-files", "0"]])
def test_bad_values_are_refused(clean_env, argv, capsys):
    with pytest.raises(SystemExit):
        parse_settings(argv)
    assert "error:" in capsys.readouterr().err
