"""A stand-in for ZeroGPU's device API, so the real `spaces` 0.51.3 worker code runs on a CPU.

    with DeviceApi(gpus=4) as api:              # serves http://127.0.0.1:PORT in a thread
        env = space_env(api.url, tmp_path)      # SPACES_ZERO_GPU=true and friends for the Space process
        ...
        api.calls                               # one Call per /schedule: duration, GPU, worker pid, times

The real `spaces` client talks to it as to ZeroGPU: POST /startup-report, /schedule (the loan: a free GPU
index, an allow token; the query carries durationSeconds), /allow (a new worker's pid, once per worker) and
/release (the loan ends; `fail=true` after an error). Like ZeroGPU it enforces the loan: a call still
running when its duration is over has its worker killed (the server process then raises "GPU task
aborted"). Each concurrent call gets its own GPU index, so calls overlap as on ZeroGPU.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse


@dataclass
class Call:
    """One loan: from /schedule to /release."""

    token: str
    gpu: int
    duration: int
    scheduled: float = field(default_factory=time.monotonic)
    pid: int | None = None  # the worker that ran it
    released: float | None = None
    failed: bool = False
    aborted: bool = False  # killed for running past its duration

    @property
    def seconds(self) -> float | None:
        return None if self.released is None else self.released - self.scheduled


class DeviceApi:
    """The device API on a free loopback port; `calls` records every loan in order."""

    def __init__(self, gpus: int = 4) -> None:
        self.gpus = gpus
        self.calls: list[Call] = []
        self.workers: dict[int, int] = {}  # GPU index -> pid of the worker last allowed on it
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> DeviceApi:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def end_workers(self) -> None:
        """Kill every worker that ever ran a loan (they outlive a Space process that was killed)."""
        with self.lock:
            pids = {call.pid for call in self.calls if call.pid is not None}
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # --- what tests read

    def wait_released(self, count: int, timeout: float = 30.0) -> list[Call]:
        """Wait until `count` loans have ended; return all calls."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while sum(call.released is not None for call in self.calls) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{count} releases expected: {self.calls}")
                self.changed.wait(left)
            return list(self.calls)

    # --- the API

    def _schedule(self, query: dict[str, str]) -> dict:
        with self.lock:
            busy = {call.gpu for call in self.calls if call.released is None}
            gpu = min(set(range(self.gpus)) - busy)
            call = Call(uuid.uuid4().hex, gpu, int(query.get("durationSeconds", 60)))
            call.pid = self.workers.get(gpu)
            self.calls.append(call)
        threading.Timer(call.duration, self._enforce, (call,)).start()
        return {"idle": True, "nvidiaIndex": gpu, "nvidiaUUID": f"GPU-{gpu}", "allowToken": call.token}

    def _allow(self, query: dict[str, str]) -> None:
        with self.lock:
            call = self._call(query["allowToken"])
            call.pid = int(query["pid"])
            self.workers[call.gpu] = call.pid

    def _release(self, query: dict[str, str]) -> None:
        with self.changed:
            call = self._call(query["allowToken"])
            call.released, call.failed = time.monotonic(), query.get("fail") == "True"
            self.changed.notify_all()

    def _enforce(self, call: Call) -> None:
        """ZeroGPU ends a loan that outlives its duration by killing the worker."""
        with self.lock:
            if call.released is not None or call.pid is None:
                return
            call.aborted = True
            pid = call.pid
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _call(self, token: str) -> Call:
        return next(call for call in self.calls if call.token == token)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                url = urlparse(self.path)
                query = {key: values[-1] for key, values in parse_qs(url.query).items()}
                body = None
                if url.path == "/schedule":
                    body = api._schedule(query)
                elif url.path == "/allow":
                    api._allow(query)
                elif url.path == "/release":
                    api._release(query)
                elif url.path != "/startup-report":
                    self.send_error(404)
                    return
                data = json.dumps(body or {}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def space_env(api_url: str, folder: Path) -> dict[str, str]:
    """The environment of a ZeroGPU Space process whose device API is `api_url`."""
    env = {
        **os.environ,
        "SPACES_ZERO_GPU": "true",
        "SPACES_ZERO_DEVICE_API_URL": api_url,
        "ZEROGPU_OFFLOAD_DIR": str(folder / "offload"),
        "GRADIO_TEMP_DIR": str(folder / "gradio"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
    }
    for name in ("GRADIO_SHARE", "JANUS_AUTH", "JANUS_AUTH_FILE", "JANUS_MCP", "GRADIO_SERVER_PORT", "SPACE_ID"):
        env.pop(name, None)
    return env
