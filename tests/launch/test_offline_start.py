"""`python app.py` on a machine that cannot reach the hub, with nothing cached: one short message naming the ways
out and a non-zero exit status, without retrying (it used to take 146 s and print 60 retry warnings). The test
counts what was tried (no retry line, one error) rather than timing it: its time is printed with -s.

The hub is made unreachable with HF_ENDPOINT pointing at a closed loopback port (a refused connection, as
offline machines and firewalls give), and HF_HOME at an empty folder (nothing cached).
"""

import os
import subprocess
import sys
import time

import pytest
from support import ROOT

pytestmark = pytest.mark.slow


def test_offline_first_start_fails_fast_with_one_message(tmp_path):
    keep = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "JANUS_", "GRADIO_SHARE"))}
    env = keep | {
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "TRANSFORMERS_OFFLINE": "0",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    start = time.monotonic()
    run = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - start
    output = (run.stdout + run.stderr).strip().splitlines()
    print(f"\n[offline start] exit {run.returncode} after {seconds:.1f} s, {len(output)} lines: {output}")

    assert run.returncode != 0
    errors = [line for line in output if line.startswith("error:")]
    assert len(errors) == 1 and len(output) <= 3, output  # the error, and the "Loading ..." line before it
    for way_out in ("--model tiny", "--model PATH", "HF_HUB_OFFLINE=1"):
        assert way_out in errors[0]
    assert not any("Retry" in line or "Traceback" in line for line in output)
