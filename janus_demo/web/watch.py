"""Requests whose client is gone are stopped, and every request is counted done when it ends.

    def generate(request: gr.Request, prompt, ...):
        yield from until_client_leaves(draw(prompt, ...), request, backend.clients)

The gate in front of gradio (`janus_demo.launch.gate`) counts each request that joins the line against its
client and names it in the `x-janus-job` header of its join request; gradio hands that request to the
event function. `until_client_leaves` passes the function's stream through, ends it (which stops the generation and
frees the model) once nobody has read the client's event stream for a while, and tells the ledger when
the request is over. Without the middleware (a test calling the function directly) it changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TypeVar

import gradio as gr

from janus_demo.service.clients import ClientLedger

log = logging.getLogger("janus_demo")
JOB_HEADER = "x-janus-job"
T = TypeVar("T")


def job_of(request: gr.Request | None) -> str | None:
    """The job id the middleware gave this request, if it came through it."""
    headers = getattr(request, "headers", None)
    return headers.get(JOB_HEADER) if headers is not None else None


def until_client_leaves(stream: Iterator[T], request: gr.Request | None, clients: ClientLedger) -> Iterator[T]:
    """`stream`'s items, until its client stops reading; closing this closes `stream`."""
    job = job_of(request)
    if job is None:
        with contextlib.closing(stream):
            yield from stream
        return
    try:
        with contextlib.closing(stream):
            for item in stream if clients.job_started(job) else ():
                if clients.abandoned(job):
                    log.info("stopped a request whose client reads no results (session %s)", request.session_hash)
                    return
                yield item
    finally:
        clients.job_ended(job)
