"""The emulator's HTTP server: a threaded stdlib server speaking HTTP/1.1 with keep-alive.

``EmulatorServer`` binds, serves ``/v3/...`` (REST and the two streams) and ``/admin/...`` on
one port from a background thread; ``serve`` runs one until a stop event is set (for a
supervised child process); ``running_emulator`` is the context manager tests use. Every answer
is JSON; authentication and account checks give OANDA's 401/403 bodies; injected faults (5xx,
429, latency, an order executed without an answer) happen here, on the socket. A client that
hangs up before its answer (a timed-out request) is one debug line, never a traceback; a real
internal error is logged at error level with its traceback and answered with a 500.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from actors.broker.emulator.admin import AdminClient, handle_admin
from actors.broker.emulator.app import Emulator, EmulatorOptions
from actors.broker.emulator.faults import HttpFault
from actors.broker.emulator.routes import (
    STREAM_PATHS,
    Call,
    bool_param,
    csv_param,
    match_route,
    order_create,
    order_log_fields,
)
from actors.broker.emulator.streams import reset_socket, serve_pricing, serve_transactions
from actors.broker.emulator.wire import ApiError, dumps

__all__ = ["EmulatorServer", "running_emulator", "serve"]

log = logging.getLogger(__name__)

# The peer went away: broken pipe, reset, aborted (ConnectionRefusedError cannot happen here).
HANGUP_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)

_UNAUTHORIZED = {"errorMessage": "Insufficient authorization to perform request."}
_FORBIDDEN = {"errorMessage": "The provided request was forbidden."}


class _DroppedError(Exception):
    """The answer was deliberately never sent (fault)."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], emulator: Emulator, *, reuse_port: bool = False) -> None:
        self.allow_reuse_port = reuse_port  # read by server_bind
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.request_seq = 0
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints these to stderr; here they go to the log, hang-ups as one debug line.
        error = sys.exc_info()[1]
        if isinstance(error, HANGUP_ERRORS):
            log.debug("emulator: client %s hung up (%s)", client_address, type(error).__name__)
        else:
            log.error("emulator: error while serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with suppress(OSError):
            super().finish()
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("emulator: " + format, *args)

    def _hung_up(self, method: str, path: str, e: OSError) -> None:
        self.close_connection = True
        log.debug("emulator: the client hung up before the answer to %s %s (%s)", method, path, type(e).__name__)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # Chunk writer protocol for streams.
    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunks(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def raw_socket(self) -> socket.socket:
        sock: socket.socket = self.connection
        return sock

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.server.request_seq += 1
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("RequestID", str(61209470000000000 + self.server.request_seq))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as e:
            self.close_connection = True
            raise ApiError(400, {"errorMessage": "Invalid Content-Length header"}) from e
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self, method: str) -> None:
        emu = self.server.emulator
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query, keep_blank_values=True)
        unix = self.headers.get("Accept-Datetime-Format", "").strip().upper() == "UNIX"
        try:
            try:
                raw = self._read_body()
                if path.startswith("/admin/"):
                    status, out = handle_admin(emu, method, path, raw)
                    self._send(status, dumps(out))
                    return
                self._api(emu, method, path, query, raw, unix)
            except ApiError as e:
                self._send(e.status, dumps(e.body, unix=unix))
        except _DroppedError:
            raise
        except HANGUP_ERRORS as e:
            self._hung_up(method, path, e)
        except Exception as e:
            log.exception("emulator: internal error on %s %s", method, path)
            try:
                self._send(500, dumps({"errorMessage": f"Internal emulator error: {type(e).__name__}"}))
            except HANGUP_ERRORS as gone:
                self._hung_up(method, path, gone)

    def _api(  # noqa: PLR0917 - private step of _dispatch
        self, emu: Emulator, method: str, path: str, query: dict[str, list[str]], raw: bytes, unix: bool
    ) -> None:
        emu.log_request(method, path, **order_log_fields(method, path, raw))
        delay = emu.faults.take_latency(method, path)
        if delay > 0:
            emu.stop_event.wait(delay)
        fault = emu.faults.take_http(method, path)
        if fault is not None and not fault.after:
            self._send_fault(fault)
            return
        if self.headers.get("Authorization", "") != f"Bearer {emu.options.token}":
            raise ApiError(401, _UNAUTHORIZED)
        if path.startswith("/v3/accounts/") and path.split("/")[3] != emu.options.account_id:
            raise ApiError(403, _FORBIDDEN)
        for pattern, kind in STREAM_PATHS.items():
            if pattern.match(path):
                self._stream(emu, kind, Call(method, path, query, None, ()), unix)
                return
        handler, groups = match_route(method, path)
        try:
            payload = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as e:
            raise ApiError(400, {"errorMessage": "The request was missing required data"}) from e
        no_answer: tuple[str, float] | None = None
        call = Call(method, path, query, payload, groups)
        if handler is order_create:
            cancel, reject, no_answer = emu.faults.take_order_faults()
            call = Call(method, path, query, payload, groups, cancel, reject)
        try:
            status, out = handler(emu, call)
        finally:
            if no_answer is not None:
                self._no_answer(emu, *no_answer)
        if fault is not None:  # carried out, but the answer is lost to an error
            self._send_fault(fault)
            return
        headers = {}
        if status == 201 and "orderCreateTransaction" in out:
            headers["Location"] = f"{path}/{out['orderCreateTransaction']['id']}"
        self._send(status, dumps(out, unix=unix), headers)

    def _send_fault(self, fault: HttpFault) -> None:
        body = fault.body.encode() if fault.body is not None else dumps(
            {"errorMessage": "Rate limit exceeded" if fault.status == 429 else "Timeout waiting for response."}
            if fault.status in (429, 504) else {"errorMessage": f"Injected HTTP {fault.status}"}
        )  # fmt: skip
        self._send(fault.status, body)

    def _no_answer(self, emu: Emulator, mode: str, seconds: float) -> None:
        if mode == "stall":
            emu.stop_event.wait(seconds)
        reset_socket(self.connection)
        self.close_connection = True
        raise _DroppedError

    def _stream(self, emu: Emulator, kind: str, call: Call, unix: bool) -> None:
        names = csv_param(call, "instruments")
        if kind == "pricing" and (not names or any(n not in emu.account.instruments for n in names)):
            raise ApiError(400, {"errorMessage": "Invalid value specified for 'instruments'"})
        snapshot = bool_param(call, "snapshot", True)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        if kind == "pricing":
            serve_pricing(emu, self, names, snapshot=snapshot, unix=unix)
        else:
            serve_transactions(emu, self, unix=unix)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _DroppedError:
            self.close_connection = True
        except OSError:
            self.close_connection = True


class EmulatorServer:
    """A running emulator on a background thread.

    Args:
        options: the emulator options.
        reuse_port: bind with ``SO_REUSEPORT``, beside the socket the host's root holds the port
            with (``supervisor.host.reserve_port``); only the embedded emulator does.
    """

    def __init__(self, options: EmulatorOptions, *, reuse_port: bool = False) -> None:
        self.emulator = Emulator(options)
        self._httpd = _HTTPServer((options.host, options.port), self.emulator, reuse_port=reuse_port)
        self.port: int = self._httpd.server_address[1]
        host = f"[{options.host}]" if ":" in options.host else options.host
        self.base_url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="emulator-http", daemon=True
        )

    def start(self) -> EmulatorServer:
        """Start serving; returns self."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, end every stream and close every connection."""
        self.emulator.stop()
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        with self._httpd.connections_lock:
            connections = list(self._httpd.connections)
        for conn in connections:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    options: EmulatorOptions,
    *,
    ready: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    reuse_port: bool = False,
) -> None:
    """Run an emulator until ``stop`` is set (blocks the calling thread).

    Args:
        options: the emulator options (``port=0`` picks a free port).
        ready: called once with the bound port when requests can be served.
        stop: set it to stop the emulator; None means run until the process is interrupted.
        reuse_port: see ``EmulatorServer``.
    """
    stop = stop or threading.Event()
    with EmulatorServer(options, reuse_port=reuse_port) as server:
        if ready is not None:
            ready(server.port)
        stop.wait()


@contextmanager
def running_emulator(options: EmulatorOptions | None = None) -> Iterator[tuple[str, AdminClient]]:
    """Run an emulator in this process for the duration of a ``with`` block.

    Yields:
        The base URL (``http://127.0.0.1:PORT``) and an ``AdminClient`` for it.
    """
    with EmulatorServer(options or EmulatorOptions()) as server:
        yield server.base_url, AdminClient(server.base_url)
