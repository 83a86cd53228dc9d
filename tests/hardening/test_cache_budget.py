"""The cache folder has a total bound (issue 17, case 4's disk): uploads past it get HTTP 507 with a message, a
running job still finishes and writes its images, and the oldest files go so uploads are taken again.

Measured (this 2-core box, loopback, no login; printed by a script, not here). Before: 60 x 19 MB uploads all
accepted (1,140 MB, 60 files in 9.5 s); 25 requests of 1,000 tiny files added 25,000 files. After, with upload
budgets raised out of the way (--upload-budget 10gb, as many logins would have): --cache-size 500mb took 19 of
60 x 19 MB (361 MB on disk; 41 got 507), the default 2gb took 99 of 120 (1,881 MB; 21 got 507); 600 uploads of
4 tiny files with --cache-files 2000 left 2,156 files (61 got 507). MCP images (case 5) are tested in
tests/web/test_mcp.py::test_app_py_keeps_mcp_images_in_its_own_cache_folder_and_removes_it_on_sigterm.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from support.fake_backend import FakeBackend
from support.meters import wait_until
from support.serving import image_args, new_client, served

from janus_demo.launch.cache_budget import KEEP_YOUNG_S, LOW_WATER
from janus_demo.launch.settings import Settings

KB, MB = 2**10, 2**20
BOUND = 4 * MB
FILES = 30
FULL = "file storage is full"


@pytest.fixture
def bounded(loaded_tiny, tmp_path, monkeypatch):
    """A FakeBackend app whose cache folder may hold 4 MB and 30 files, served on loopback with no login."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    backend = FakeBackend(loaded_tiny)
    with served(backend, settings=Settings(cache_size="4mb", cache_files=FILES)) as (_, url):
        backend.url, backend.folder = url, folder
        yield backend
    backend.gate.set()


def on_disk(folder: Path) -> tuple[int, int]:
    """(bytes, files) under `folder`."""
    found = [path for path in folder.rglob("*") if path.is_file()]
    return sum(path.stat().st_size for path in found), len(found)


def upload(http: httpx.Client, size: int) -> httpx.Response:
    return http.post("gradio_api/upload", files={"files": ("photo.png", os.urandom(size), "image/png")})


def fill(http: httpx.Client, folder: Path, size: int, full: bool) -> tuple[list[str], httpx.Response]:
    """Upload `size` bytes at a time until one is refused while the folder really is near its bound (`full`
    in bytes, else in files); return the paths of the uploads taken and the refusal."""
    taken: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = upload(http, size)
        if response.status_code == 200:
            taken += response.json()
            continue
        assert response.status_code == 507, response.text
        used, files = on_disk(folder)
        if (used if full else files) >= LOW_WATER * (BOUND if full else FILES):
            return taken, response
        time.sleep(0.05)  # refused on the budget's estimate; its next walk counts what is really there
    raise AssertionError("the folder never filled")


def aged(paths: list[str]) -> None:
    """Make these files look written before KEEP_YOUNG_S (what waiting that long would do)."""
    old = time.time() - 2 * KEEP_YOUNG_S
    for path in paths:
        os.utime(path, (old, old))


def test_uploads_past_the_bound_get_507_a_running_job_finishes_and_old_files_make_room(bounded):
    bounded.gate.clear()  # the job holds the model until the folder is full
    client = new_client(bounded.url)
    job = client.submit("a red fox", *image_args(num_images=2), api_name="/generate_images")
    wait_until(lambda: bounded.inside == 1, 30)
    with httpx.Client(base_url=bounded.url, timeout=60) as http:
        taken, refused = fill(http, bounded.folder, 900 * KB, full=True)
        assert taken and refused.status_code == 507 and FULL in refused.json()["detail"]
        assert "MB used" in refused.json()["detail"] and refused.headers["retry-after"]
        assert on_disk(bounded.folder)[0] <= BOUND, "the bound holds on disk"

        bounded.gate.set()
        gallery, _, _ = job.result(timeout=60)
        assert len(gallery) == 2, "the running job finished, its images written into the full folder"
        results = {path for path in bounded.folder.rglob("*") if path.is_file() and str(path) not in taken}
        assert results, "the job's images are in the folder"

        aged(taken)  # the uploads are now old enough to go, the job's images are not
        wait_until(lambda: upload(http, 900 * KB).status_code == 200, 60, interval=0.1)
    client.close()
    assert any(not Path(path).exists() for path in taken), "the oldest files made room"
    assert all(path.exists() for path in results), "young files (a finished job's images) are kept"
    assert on_disk(bounded.folder)[0] <= BOUND


def test_uploads_past_the_file_bound_get_507(bounded):
    with httpx.Client(base_url=bounded.url, timeout=60) as http:
        taken, refused = fill(http, bounded.folder, 10, full=False)
        detail = refused.json()["detail"]
        assert FULL in detail and f"of {FILES:,} files" in detail
        aged(taken)
        wait_until(lambda: upload(http, 10).status_code == 200, 60, interval=0.1)
    assert on_disk(bounded.folder)[1] <= FILES
