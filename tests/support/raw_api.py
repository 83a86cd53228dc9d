"""Raw queue calls: bodies gradio_client cannot send (NaN, inf, forged shapes)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx


def fn_index(url: str, api_name: str) -> int:
    """The dependency id of a public endpoint, read from the served config."""
    config = httpx.get(url + "config", timeout=10).json()
    for dependency in config["dependencies"]:
        if dependency.get("api_name") == api_name:
            return dependency["id"]
    raise KeyError(api_name)


def raw_join(http: httpx.Client, index: int, data: list[Any], session_hash: str) -> httpx.Response:
    """POST /queue/join with `data` serialised by Python's json (which writes NaN and Infinity)."""
    body = {"data": data, "fn_index": index, "session_hash": session_hash, "event_data": None, "trigger_id": None}
    return http.post("gradio_api/queue/join", content=json.dumps(body), headers={"content-type": "application/json"})


def raw_call(
    url: str, index: int, data: list[Any], timeout: float = 30, session_hash: str | None = None
) -> tuple[dict[str, Any], str]:
    """Join the queue and read the event stream to the end: (the process_completed message, the raw stream)."""
    session_hash = session_hash or uuid.uuid4().hex
    with httpx.Client(base_url=url, timeout=timeout) as http:
        joined = raw_join(http, index, data, session_hash)
        joined.raise_for_status()
        seen = []
        with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
            for line in stream.iter_lines():
                seen.append(line)
                if line.startswith("data:") and json.loads(line[5:]).get("msg") == "process_completed":
                    return json.loads(line[5:]), "\n".join(seen)
    raise AssertionError("the event stream ended without process_completed")
