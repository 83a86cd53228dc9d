"""A total bound on the app's cache folder (bytes and files), whoever writes there.

    budget = CacheBudget(cache_base(), max_bytes=2 * 2**30, max_files=20_000)
    refusal = budget.admit_upload(size, files)  # None: counted in; else the message the gate sends (HTTP 507)

Upload budgets count per address or login (visitors of a share link without auth, all from loopback, once
uploaded 60 x 19 MB, 1.1 GB in 11 s), and generated and MCP images are written whatever the count. This is the
backstop that needs no identity: all of them land in one folder (janus_demo/launch/cache.py), and uploads that
would take it past `max_bytes` or `max_files` are refused, newest first.

Its numbers come from a walk of the folder at most every `scan_every_s` in a thread of its own (never on the
request's path: 20,000 files take about 70 ms to walk on a 2-core box) plus what it admitted since. The thread
runs while uploads come in (every `scan_every_s`) or the folder is near its bound (every 15 s), and ends itself
when both stop.

When the bound is reached the folder is also relieved, in that thread: the periodic sweep runs at once (empty
folders, abandoned upload parts), then the oldest files go first, down to `LOW_WATER` of the bound, but never a
file younger than `keep_young_s`. Refusing alone would bound only what passes the gate: generated and MCP
images are written whatever the count, and a folder filled by one burst would refuse every visitor's uploads
until gradio's hourly sweep. A file older than 10 minutes belongs to a finished request (a request reads its
images when it starts and runs at most 5 minutes), so no running job loses a file; what goes is the download
link of an old result, or an old image of a conversation (left out with a note, as after the hourly sweep).
The host's disk comes first.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from janus_demo.launch.cache import OWNER_FILE, sweep_dir

log = logging.getLogger("janus_demo")
SCAN_EVERY_S = 2.0
KEEP_YOUNG_S = 600.0  # a file younger than this may belong to a running request or a result not yet fetched
LOW_WATER = 0.8  # relief removes old files until the folder is under this share of each bound
IDLE_S = 60.0  # the watching thread ends after this long without uploads, unless the folder is near its bound
FULL = "The server's file storage is full ({what}); uploads are refused for now. Try again in a few minutes."


@dataclass(frozen=True)
class Usage:
    """Bytes and files in a folder."""

    bytes: int = 0
    files: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.bytes + other.bytes, self.files + other.files)


class CacheBudget:
    """The folder's size, kept cheaply, and the uploads it still has room for (thread-safe)."""

    def __init__(
        self,
        folder: Path,
        max_bytes: int,
        max_files: int,
        scan_every_s: float = SCAN_EVERY_S,
        keep_young_s: float = KEEP_YOUNG_S,
    ) -> None:
        self.folder, self.max_bytes, self.max_files = Path(folder), max_bytes, max_files
        self.scan_every_s, self.keep_young_s = scan_every_s, keep_young_s
        self._lock = threading.Lock()
        self._wake = threading.Event()  # a refusal asks the watching thread for relief now
        self._admitted: deque[tuple[float, Usage]] = deque()  # (monotonic time, upload) since the last scans
        self._scanned_at = time.monotonic()
        self._scanned, self._oldest = folder_usage(self.folder)
        self._last_upload = 0.0
        self._watching = False

    def usage(self) -> Usage:
        """The folder as last walked, plus the uploads admitted while and since that walk began."""
        with self._lock:
            return self._estimate()

    def admit_upload(self, size: int, files: int) -> str | None:
        """Count in an upload of `size` bytes in `files` files, or say why the folder has no room for it."""
        request = Usage(size, files)
        with self._lock:
            self._last_upload = now = time.monotonic()
            used = self._estimate()
            over = used.bytes + size > self.max_bytes or used.files + files > self.max_files
            if not over:
                self._admitted.append((now, request))
            self._watch()
        if over:
            self._wake.set()
            return FULL.format(what=self._describe(used, request))
        return None

    # --- the watching thread ---------------------------------------------------------------------

    def _watch(self) -> None:
        """Start the watching thread unless it runs (call with the lock held)."""
        if not self._watching:
            self._watching = True
            threading.Thread(target=self._run, name="janus-cache-budget", daemon=True).start()

    def _run(self) -> None:
        while True:
            asked = self._wake.is_set()
            self._wake.clear()
            try:
                self._refresh(relieve=asked)
            except OSError as error:  # a file vanishing under the walk is not worth the thread
                log.warning("cache budget: %s", error)
            with self._lock:
                if self._quiet():
                    self._watching = False
                    return
                busy = time.monotonic() - self._last_upload <= IDLE_S
            self._wake.wait(self.scan_every_s if busy else IDLE_S / 4)  # near the bound but idle: walk less often

    def _refresh(self, relieve: bool) -> None:
        """Walk the folder; when it is at its bound (or near it and an upload was refused), relieve it and walk
        again."""
        self._scan()
        with self._lock:
            before = self._scanned
            full = before.bytes >= self.max_bytes or before.files >= self.max_files
            high = before.bytes >= self.max_bytes * LOW_WATER or before.files >= self.max_files * LOW_WATER
            due = self._oldest is not None and time.time() - self._oldest >= self.keep_young_s
        if (full or (relieve and high)) and due:  # a refusal from uploads still arriving needs no removal
            swept, removed = self._relieve()
            self._scan()
            log.warning(
                "cache folder at its bound: %s, %d files before; swept %d entries, removed the %d oldest files (%s)",
                _mb(before.bytes),
                before.files,
                swept,
                removed.files,
                _mb(removed.bytes),
            )

    def _scan(self) -> None:
        started = time.monotonic()
        found, oldest = folder_usage(self.folder)
        with self._lock:
            if started >= self._scanned_at:
                self._scanned, self._oldest, self._scanned_at = found, oldest, started
            while self._admitted and self._admitted[0][0] < started - self.scan_every_s:
                self._admitted.popleft()  # on disk by now (or still arriving: its part is on disk, counted)

    def _relieve(self) -> tuple[int, Usage]:
        """The periodic sweep at once, then the oldest files that are old enough, down to LOW_WATER."""
        swept = sweep_dir(self.folder)
        target = Usage(int(self.max_bytes * LOW_WATER), int(self.max_files * LOW_WATER))
        return swept, remove_oldest(self.folder, target, self.keep_young_s)

    def _estimate(self) -> Usage:
        """(Lock held.) The last walk plus what was admitted since shortly before it (maybe not yet on disk)."""
        recent = [upload for at, upload in self._admitted if at >= self._scanned_at - self.scan_every_s]
        return sum(recent, self._scanned)

    def _quiet(self) -> bool:
        """(Lock held.) No upload for IDLE_S and the folder well under its bound: the thread may end."""
        used = self._estimate()
        near = used.bytes >= self.max_bytes * LOW_WATER or used.files >= self.max_files * LOW_WATER
        return not near and time.monotonic() - self._last_upload > IDLE_S and not self._wake.is_set()

    def _describe(self, used: Usage, request: Usage) -> str:
        if used.bytes + request.bytes > self.max_bytes:
            return f"{_mb(used.bytes)} of {_mb(self.max_bytes)} used"
        return f"{used.files:,} of {self.max_files:,} files"


# --- the folder ------------------------------------------------------------------------------------


def folder_usage(folder: Path) -> tuple[Usage, float | None]:
    """Bytes and regular files under `folder` (symlinks not followed, the owner lock not counted), and the
    modification time of its oldest file (None when it has none)."""
    found = _files(folder)
    return Usage(sum(size for _, size, _ in found), len(found)), min((mtime for mtime, _, _ in found), default=None)


def remove_oldest(folder: Path, target: Usage, keep_young_s: float) -> Usage:
    """Remove the oldest files under `folder` (by modification time) until it holds at most `target`, never a
    file younger than `keep_young_s`; return what went."""
    entries = sorted(_files(folder))
    held = Usage(sum(size for _, size, _ in entries), len(entries))
    removed, now = Usage(), time.time()
    for mtime, size, path in entries:
        if (held.bytes <= target.bytes and held.files <= target.files) or now - mtime < keep_young_s:
            break
        try:
            os.unlink(path)
        except OSError:  # gone already (gradio's own sweep, a finished download)
            pass
        held, removed = Usage(held.bytes - size, held.files - 1), removed + Usage(size, 1)
    return removed


def _files(folder: Path) -> list[tuple[float, int, str]]:
    """(mtime, size, path) of every regular file under `folder`, by os.scandir (the cheapest walk: its entries
    carry their type, so only files are stat'ed)."""
    found, pending = [], [str(folder)]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(entry.path)
                        elif entry.is_file(follow_symlinks=False) and entry.name != OWNER_FILE:
                            stat = entry.stat(follow_symlinks=False)
                            found.append((stat.st_mtime, stat.st_size, entry.path))
                    except OSError:  # removed while we looked
                        continue
        except OSError:
            continue
    return found


def _mb(size: int) -> str:
    return f"{size / 2**20:,.0f} MB" if size >= 2**20 else f"{size / 2**10:,.0f} KB"
