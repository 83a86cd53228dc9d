"""gradio's cache belongs to the process: swept at start, while serving and at exit; previews cost few files.

Measured (printed with -s): one 16-image request with a preview every step (palette previews, the CPU's
`auto`) on the 8x8 model writes 96 files (5 previews of 16 small tiles + 16 images), 0.5 MB; a new process
removes the folder of one that was killed (SIGKILL); the exit-70 path removes the process's own folder (and
SIGTERM does: tests/web/test_mcp.py's app.py run); the periodic sweep removes empty hash folders and abandoned
upload parts, and keeps files.
"""

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from janus_demo.launch import cache

ROOT = Path(__file__).resolve().parents[2]
MB = 2**20


def files_in(folder: Path) -> tuple[int, float]:
    found = [path for path in folder.rglob("*") if path.is_file() and path.name != cache.OWNER_FILE]
    return len(found), sum(path.stat().st_size for path in found) / MB


def run_python(code: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)


# --- the cache folder's life ---------------------------------------------------------------------


def test_start_up_removes_the_folders_of_dead_processes_only(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    killed = run_python(
        "import os\n"
        "from janus_demo.launch.cache import claim_cache_dir\n"
        "folder = claim_cache_dir().path\n"
        "(folder / 'abc123').mkdir(); (folder / 'abc123' / 'cat.png').write_bytes(b'x' * 1000)\n"
        "print(folder, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    dead = Path(killed.stdout.strip())
    assert killed.returncode == -signal.SIGKILL and (dead / "abc123" / "cat.png").exists()
    alive = tmp_path / "janus-alive"
    alive.mkdir()
    with open(alive / cache.OWNER_FILE, "w") as owner:
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a running process holds its lock
        mine = cache.claim_cache_dir(on_exit=False)
        try:
            assert not dead.exists(), "a killed process's files are swept by the next start"
            assert alive.exists(), "a live process's folder is left alone"
            assert os.environ["GRADIO_TEMP_DIR"] == str(mine.path) and mine.path.parent == tmp_path
        finally:
            mine.remove()


def test_the_exit_70_path_removes_the_cache_folder(tmp_path):
    result = run_python(
        "import threading, time\n"
        "from janus_demo.launch.cache import claim_cache_dir\n"
        "from janus_demo.service.model_lock import ModelLock\n"
        "folder = claim_cache_dir().path\n"
        "(folder / 'f').mkdir(); (folder / 'f' / 'image.png').write_bytes(b'x')\n"
        "print(folder, flush=True)\n"
        "def work(emit):\n"
        "    raise RuntimeError('CUDA error: device-side assert triggered')\n"
        "try:\n"
        "    list(ModelLock().stream(work, threading.Event()))\n"
        "except Exception:\n"
        "    pass\n"
        "time.sleep(30)\n",
        env={"GRADIO_TEMP_DIR": str(tmp_path)},
    )
    assert result.returncode == 70
    assert not Path(result.stdout.strip()).exists()


def test_the_periodic_sweep_removes_empty_folders_and_abandoned_parts(tmp_path):
    old = time.time() - 2 * cache.STRAY_AGE_S
    (tmp_path / "a1" / "b2").mkdir(parents=True)
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "cat.png").write_bytes(b"x")
    (tmp_path / "just-made").mkdir()
    (tmp_path / "tmpabc123").write_bytes(b"part of an upload that was cut off")
    (tmp_path / "tmpfresh").write_bytes(b"an upload in progress")
    for path in (tmp_path / "a1" / "b2", tmp_path / "a1", tmp_path / "tmpabc123"):
        os.utime(path, (old, old))
    removed = cache.sweep_dir(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["just-made", "kept", "tmpfresh"]
    assert (tmp_path / "kept" / "cat.png").exists()
    assert removed == 3


# --- previews ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_16_images_with_a_preview_every_step_write_few_files(small_backend, tmp_path, monkeypatch):
    """On the 8x8 model (64 steps): the files written depend on the previews per request, not on the grid."""
    from support.serving import new_client, served

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    with served(small_backend) as (_, url):
        client = new_client(url)
        start = time.monotonic()
        job = client.submit("a red fox", 1, 5.0, 1.0, 16, 1.0, 1, "auto", api_name="/generate_images")
        gallery, _, _ = job.result(timeout=600)
        seconds = time.monotonic() - start
        previews = [outputs[0] for outputs in job.outputs()[:-1] if isinstance(outputs[0], list)]
        client.close()
    count, size = files_in(tmp_path / "cache")
    assert len(gallery) == 16
    assert 1 <= len(previews) <= small_backend.limits.max_preview_updates
    assert all(len(preview) == 16 for preview in previews), "one small tile (or decoded image) per image"
    assert count <= 16 * small_backend.limits.max_preview_updates // 4 + 16, "a 16-image batch: 6 previews at most"
    assert size <= 15
    print(
        f"\n[hardening] 16 images, preview every step: {len(previews)} preview updates, {count} files, {size:.1f} MB"
        f" written in {seconds:.0f} s"
    )
