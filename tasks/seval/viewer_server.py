"""The viewer's HTTP server: stdlib ``http.server`` on 127.0.0.1 only.

Routes: ``GET /`` (the page, its first page of rows inline so the first paint needs no second
round trip), ``GET /api/rows`` (a page as JSON), ``GET /api/facets``, ``GET /api/export``
(``format=jsonl|csv``, streamed) and ``POST /api/relabel``. Every query parameter goes
through :func:`parse_filter`, so a bad one is a 400 with the same one-line error the CLI
prints.

It binds the loopback address only (the rows are attacker text and the relabel endpoint
writes to the store). A POST must be ``application/json`` (a cross-site form cannot send
that without a CORS preflight, which this server never grants) and every request must name
this server in its ``Host`` header (a DNS-rebinding page cannot).
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from trustflow.errors import TrustflowError
from trustflow.tasks.seval.viewer import RunView, ViewFilter, parse_filter
from trustflow.tasks.seval.viewer_page import build_page, content_security_policy

HOST = "127.0.0.1"
MAX_BODY = 64 * 1024


def _params(query: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}


class ViewerServer(ThreadingHTTPServer):
    """A threading HTTP server holding one opened run (queries are read-only; relabels are
    serialised by a lock so two clicks cannot race on the same dataset)."""

    daemon_threads = True

    def __init__(self, view: RunView, port: int = 0) -> None:
        self.view = view
        self.relabel_lock = threading.Lock()
        super().__init__((HOST, port), ViewerHandler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"


class ViewerHandler(BaseHTTPRequestHandler):
    server: ViewerServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        """Quiet: a page of filters is many requests; errors come back to the page instead."""

    # ---- helpers -------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data: Any, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _error(self, message: str, status: int = HTTPStatus.BAD_REQUEST) -> None:
        self._json({"error": message}, status)

    def _host_ok(self) -> bool:
        port = self.server.server_address[1]
        return self.headers.get("Host", "") in {f"{HOST}:{port}", f"localhost:{port}"}

    # ---- routes --------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if not self._host_ok():
            return self._error("unexpected Host header", HTTPStatus.FORBIDDEN)
        parts = urlsplit(self.path)
        view = self.server.view
        try:
            if parts.path == "/":
                return self._page(parts.query)
            if parts.path == "/api/rows":
                return self._json(view.query(parse_filter(_params(parts.query))).as_dict())
            if parts.path == "/api/facets":
                return self._json({"run_id": view.run_id, "facets": view.facets})
            if parts.path == "/api/export":
                return self._export(_params(parts.query))
        except TrustflowError as exc:
            return self._error(str(exc))
        return self._error(f"no such page: {parts.path}", HTTPStatus.NOT_FOUND)

    def _page(self, query: str) -> None:
        """The page with its first rows inline; a bad filter in the URL shows the page
        unfiltered with the error line (a typo in an address bar should not be a JSON blob)."""
        view = self.server.view
        error = None
        try:
            f = parse_filter(_params(query))
            page = view.query(f)
        except TrustflowError as exc:
            error, f = str(exc), ViewFilter()
            page = view.query(f)
        state = {
            "mode": "serve",
            "run_id": view.run_id,
            "facets": view.facets,
            "filter": f.query_params(),
            "page": page.as_dict(),
            "error": error,
        }
        csp = {"Content-Security-Policy": content_security_policy("serve")}
        status = HTTPStatus.OK if error is None else HTTPStatus.BAD_REQUEST
        self._send(status, build_page(state).encode(), "text/html; charset=utf-8", csp)

    def _export(self, params: dict[str, str]) -> None:
        fmt = params.pop("format", "jsonl")
        if fmt not in ("jsonl", "csv"):
            return self._error(f"export format={fmt!r}: use jsonl or csv")
        chunks = self.server.view.export(parse_filter(params), fmt)  # type: ignore[arg-type]
        first = next(chunks, "")  # a bad filter fails here, before the headers go out
        self.send_response(HTTPStatus.OK)
        ctype = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
        self.send_header("Content-Type", f"{ctype}; charset=utf-8")
        self.send_header("Content-Disposition", f'attachment; filename="{self.server.view.run_id}.{fmt}"')
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        for chunk in (first, *chunks):
            data = chunk.encode()
            if data:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        if not self._host_ok():
            return self._error("unexpected Host header", HTTPStatus.FORBIDDEN)
        if urlsplit(self.path).path != "/api/relabel":
            return self._error(f"no such endpoint: {self.path}", HTTPStatus.NOT_FOUND)
        if self.headers.get_content_type() != "application/json":
            return self._error("relabel: send Content-Type: application/json", HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            return self._error(f"relabel: body of {length} bytes (1 to {MAX_BODY})")
        try:
            body = json.loads(self.rfile.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._error("relabel: the body is not JSON")
        if not isinstance(body, dict):
            return self._error("relabel: the body must be a JSON object")
        label = body.get("label")
        if label not in ("unsafe", "safe"):
            return self._error(f"relabel: label={label!r}: use unsafe or safe")
        for key in ("judgement_id", "response_id", "annotator"):
            if not isinstance(body.get(key), str) or not body[key].strip():
                return self._error(f"relabel: {key} is required")
        note = body.get("note")
        try:
            with self.server.relabel_lock:
                result = self.server.view.relabel(
                    body["judgement_id"],
                    body["response_id"],
                    label == "unsafe",
                    body["annotator"],
                    note if isinstance(note, str) else None,
                )
        except TrustflowError as exc:
            return self._error(str(exc))
        return self._json(result)


def start_server(view: RunView, port: int = 0) -> tuple[ViewerServer, threading.Thread]:
    """Bind 127.0.0.1:``port`` (0: a free one, see ``server.url``) and serve in a daemon
    thread; stop with ``server.shutdown(); server.server_close()``."""
    server = ViewerServer(view, port)
    thread = threading.Thread(target=server.serve_forever, name="trustflow-view", daemon=True)
    thread.start()
    return server, thread
