"""gradio's file cache, owned by this process: a folder of its own, swept at start, while serving and at exit.

    cache = claim_cache_dir()     # before the UI is built: sets GRADIO_TEMP_DIR to this process's folder
    cache.start_sweeping()        # empty folders and stray upload parts, every SWEEP_EVERY_S
    ...                           # at exit (normal, SIGTERM, or the exit-70 path) the folder is removed

Every upload and every image the app shows is a file in gradio's cache (`GRADIO_TEMP_DIR`, else
`<tmp>/gradio`). gradio deletes the files it made when it shuts down cleanly and, with `delete_cache`,
old files while it runs, but leaves their per-file hash folders, the parts of aborted uploads, and
everything after a crash; and a new process never sweeps an old one's files. So each process works in
`<base>/janus-<pid>-<random>`, holding an exclusive `flock` on a file inside for as long as it lives
(the kernel releases it however the process ends): at start-up every `janus-*` folder whose lock can be
taken belongs to a dead process and is removed. The folder is removed at a normal exit (atexit, with
SIGTERM turned into one) and, best effort, just before the exit-70 path ends the process.

Some gradio modules copy GRADIO_TEMP_DIR when they are imported, before this process has its folder: its
MCP server saves `data:` images there. `gradio_writes_into` points them at the process's folder, so those
files are counted by the cache budget (janus_demo/launch/cache_budget.py), swept and removed at exit.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import secrets
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; earlier runs' folders are then left alone
    fcntl = None

from gradio.utils import get_upload_folder

from janus_demo.service import model_lock

log = logging.getLogger("janus_demo")
PREFIX = "janus-"
OWNER_FILE = ".owner"
SWEEP_EVERY_S = 600.0  # empty folders and stray upload parts
EMPTY_AGE_S = 60.0  # an empty folder younger than this may be about to receive its file
STRAY_AGE_S = 3600.0  # an upload part (gradio's tmp* files) older than this was abandoned
# gradio 6.31's modules that read GRADIO_TEMP_DIR once, at import: the MCP server's `data:` images
# (gradio.mcp), the screen-recording route (gradio.route_utils, and gradio.routes' copy of it).
GRADIO_IMPORT_TIME_DIRS = (
    ("gradio.mcp", "DEFAULT_TEMP_DIR"),
    ("gradio.route_utils", "DEFAULT_TEMP_DIR"),
    ("gradio.routes", "DEFAULT_TEMP_DIR"),
    ("gradio.screen_recording_utils", "DEFAULT_TEMP_DIR"),
)


def cache_base() -> Path:
    """Where gradio keeps its cache: GRADIO_TEMP_DIR, else <tmp>/gradio (gradio's own rule, read from gradio)."""
    return Path(get_upload_folder()).resolve()


@dataclass
class CacheDir:
    """This process's cache folder and the lock that marks it alive."""

    path: Path
    _lock_file: object = field(repr=False, default=None)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def remove(self) -> None:
        """Delete the folder and everything in it (idempotent, never raises)."""
        self._stop.set()
        shutil.rmtree(self.path, ignore_errors=True)

    def sweep(self, stray_age_s: float = STRAY_AGE_S) -> int:
        """Remove empty folders and abandoned upload parts; return how many entries went."""
        return sweep_dir(self.path, stray_age_s)

    def start_sweeping(self, every_s: float = SWEEP_EVERY_S) -> None:
        """Sweep every `every_s` seconds in a daemon thread, until `remove`."""

        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    self.sweep()
                except OSError as error:  # a file vanishing under us is not worth a crash
                    log.warning("cache sweep failed: %s", error)

        threading.Thread(target=loop, name="janus-cache-sweep", daemon=True).start()


def claim_cache_dir(base: Path | None = None, on_exit: bool = True) -> CacheDir:
    """Sweep dead processes' folders under `base`, make this process's own and point gradio at it.

    Call it before the UI is built (components read GRADIO_TEMP_DIR when they are made). With `on_exit`,
    the folder is removed at exit, on SIGTERM, and before a fatal-GPU-error exit.
    """
    base = base or cache_base()
    base.mkdir(parents=True, exist_ok=True)
    removed = sweep_leftovers(base)
    if removed:
        log.info("Removed %d cache folder(s) left by earlier runs under %s", removed, base)
    path = base / f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    path.mkdir()
    lock_file = open(path / OWNER_FILE, "w")  # noqa: SIM115 - held open for the life of the process
    if fcntl is not None:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.environ["GRADIO_TEMP_DIR"] = str(path)
    gradio_writes_into(path)  # once per process: a second app served in it (tests) keeps its own folder
    cache = CacheDir(path, lock_file)
    if on_exit:
        atexit.register(cache.remove)
        model_lock.before_fatal_exit.append(cache.remove)
        exit_on_sigterm()
    return cache


def gradio_writes_into(folder: Path) -> None:
    """Point the gradio module attributes that copied GRADIO_TEMP_DIR at import time at `folder`.

    gradio has no public setting for them (its MCP server saves `data:` images under the folder it saw when it
    was imported, outside this process's own). This is the one place that sets a gradio module attribute;
    tests/web/test_mcp.py fails if a gradio version moves or renames them.
    """
    for module_name, attribute in GRADIO_IMPORT_TIME_DIRS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # gradio.mcp without the mcp package: no MCP server to write anything
            continue
        if not hasattr(module, attribute):
            log.warning("gradio changed: %s.%s is gone; its files may land outside %s", module_name, attribute, folder)
            continue
        setattr(module, attribute, str(folder))


def sweep_leftovers(base: Path) -> int:
    """Remove `janus-*` folders under `base` whose owner process is gone (its lock can be taken)."""
    if fcntl is None:
        return 0
    removed = 0
    for folder in base.glob(f"{PREFIX}*"):
        if folder.is_dir() and not _owner_alive(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _owner_alive(folder: Path) -> bool:
    try:
        with open(folder / OWNER_FILE) as owner:
            fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the file closes
    except BlockingIOError:
        return True
    except OSError:  # no owner file: not a folder made by claim_cache_dir, or half made; leave it
        return not (folder / OWNER_FILE).exists() and time.time() - folder.stat().st_mtime < STRAY_AGE_S
    return False


def sweep_dir(root: Path, stray_age_s: float = STRAY_AGE_S) -> int:
    """Empty folders under `root` (gradio's per-file hash folders once their file is gone) and gradio's
    `tmp*` upload parts older than `stray_age_s` (left by uploads that were cut off)."""
    removed, now = 0, time.time()
    for entry in root.glob("tmp*"):
        try:
            if entry.is_file() and now - entry.stat().st_mtime > stray_age_s:
                entry.unlink()
                removed += 1
        except OSError:
            continue
    settled = [folder for folder, _, _ in os.walk(root) if Path(folder) != root and _age(folder, now) > EMPTY_AGE_S]
    for folder in sorted(settled, key=len, reverse=True):  # deepest first: a parent may empty out
        try:
            os.rmdir(folder)  # only succeeds when empty
            removed += 1
        except OSError:
            continue
    return removed


def _age(path: str, now: float) -> float:
    try:
        return now - os.stat(path).st_mtime
    except OSError:
        return 0.0


def exit_on_sigterm() -> None:
    """SIGTERM (a supervisor stopping the app) ends it like Ctrl+C, so exit handlers run."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
