"""The router figure's measuring code, for real but tiny: wrk against a local HTTP server."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.results import Figure
from bench.router import compare, summarize_pairs
from tests.helpers import free_port

BODY = b"<h1>small static page</h1>\n"


class Page(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as nginx serves it
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle and delayed ACKs hold
    # every answer for 40 ms, and a second brings too few requests to account CPU by them.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass  # quiet: thousands of requests


@pytest.fixture
def page_url() -> Iterator[str]:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_one_tiny_pair_measures_both_sides_and_fills_the_figure(page_url: str) -> None:
    # This process serves the page, so it stands in for the router's workers.
    pairs = compare(
        page_url,
        page_url,
        host="bench.localhost",
        runs=1,
        seconds=1,
        connections=2,
        router_pids=lambda: {os.getpid()},
    )
    [pair] = pairs
    assert pair.direct.requests > 0 and pair.routed.requests > 0
    assert pair.direct.errors == 0 and pair.routed.errors == 0
    assert 0 < pair.direct.p50 <= pair.direct.p99
    assert pair.ratio > 0
    # A Python server spends well over a microsecond of CPU on each request it answers.
    assert pair.routed_cpu.router > 1
    assert pair.direct_cpu.machine >= pair.routed_cpu.router * 0.5
    figure = Figure("router", "tiny", ["path", "requests/s", "p50", "p99"])
    summarize_pairs(figure, pairs)
    assert [row[0] for row in figure.rows] == [
        "direct (published port)",
        "through the router",
        "router / direct",
    ]
    assert figure.met is not None
    assert figure.notes[0].startswith("CPU per request, whole machine: direct ")
