"""--max-batch-rows / JANUS_MAX_BATCH_ROWS: the scheduler's row cap, or 0 for one request at a time."""

import pytest

from janus_demo.launch.settings import parse_settings
from janus_demo.service.backend import Backend


def test_the_row_cap_has_a_default_an_environment_twin_and_a_flag_that_wins(monkeypatch):
    assert parse_settings([]).max_batch_rows == 16
    monkeypatch.setenv("JANUS_MAX_BATCH_ROWS", "8")
    assert parse_settings([]).max_batch_rows == 8
    assert parse_settings(["--max-batch-rows", "4"]).max_batch_rows == 4
    with pytest.raises(SystemExit):
        parse_settings(["--max-batch-rows", "-1"])


def test_zero_rows_draws_one_request_at_a_time_under_the_lock(loaded_small):
    assert Backend(loaded_small, max_batch_rows=0).scheduler is None
    assert Backend(loaded_small, max_batch_rows=6).scheduler.max_rows == 6
