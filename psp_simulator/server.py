"""HTTP front end: request pipeline (auth, faults, idempotency), handler and server.

Use :func:`make_server` to build a ready-to-serve :class:`SimulatorHTTPServer`
(background workers already running); call ``serve_forever()`` and, to stop,
``shutdown()`` then ``server_close()``.
"""

from __future__ import annotations

import hmac
import logging
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from . import api, control, hosted
from .config import Config
from .errors import ApiError, authentication_error, internal_error, service_unavailable
from .faults import FaultInjector
from .httpio import Request, Response, encode_json, error_response, json_response, parse_json_object
from .idempotency import IdempotencyKeys, scope_for
from .ids import new_id
from .jsclient import SCRIPT
from .service import Simulator
from .settler import AsyncSettler
from .storage import Store
from .webhooks import WebhookDispatcher

logger = logging.getLogger("psp_simulator")

MAX_BODY_BYTES = 1024 * 1024

CORS_HEADERS: tuple[tuple[str, str], ...] = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
    ("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key"),
    ("Access-Control-Expose-Headers", "Request-Id, Idempotent-Replayed"),
    ("Access-Control-Max-Age", "600"),
)
_CORS_PATHS = {"/v1/tokens", "/js/v1.js"}


class App:
    """Maps a :class:`Request` to a :class:`Response` (``None`` = drop the connection)."""

    def __init__(self, config: Config, store: Store, faults: FaultInjector, sim: Simulator,
                 dispatcher: WebhookDispatcher,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.store = store
        self.faults = faults
        self.sim = sim
        self.dispatcher = dispatcher
        self.idempotency = IdempotencyKeys(store)
        self._sleep = sleep

    def handle(self, request: Request) -> Response | None:
        path = request.path.rstrip("/") or "/"
        if path in _CORS_PATHS and request.method == "OPTIONS":
            return Response(204, content_type="text/plain").with_headers(*CORS_HEADERS)
        if path == "/health":
            return json_response(200, {"status": "ok"})
        if path == "/js/v1.js":
            return Response(200, SCRIPT.encode(), "application/javascript; charset=utf-8",
                            [("Cache-Control", "public, max-age=300"), *CORS_HEADERS])
        if path.startswith("/v1/"):
            response = self._handle_api(request)
            if response is not None and path in _CORS_PATHS:
                response.with_headers(*CORS_HEADERS)
            return response
        if path == "/control" or path.startswith("/control/"):
            return control.handle(self, request)
        if path.startswith("/hosted/") or path.startswith("/action/"):
            return hosted.handle(self.sim, request)
        return error_response(ApiError(404, "invalid_request_error", "resource_missing",
                                       f"Unrecognized request URL: {request.method} {path}."))

    # ------------------------------------------------------------------ auth
    def authenticate(self, request: Request, expected: str, body_key: Any = None) -> str:
        """Return the presented key if it equals ``expected``, else raise a 401."""
        scheme, _, credential = (request.header("Authorization") or "").partition(" ")
        presented = credential.strip() if scheme.lower() == "bearer" else ""
        if not presented and isinstance(body_key, str):
            presented = body_key
        if not presented:
            raise authentication_error("No API key provided; send 'Authorization: Bearer <key>'.")
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            raise authentication_error()
        return presented

    # ------------------------------------------------------------------ /v1 pipeline
    def _handle_api(self, request: Request) -> Response | None:
        try:
            route, params = api.match(request.method, request.path)
            body = parse_json_object(request.body) if request.method == "POST" else {}
            if route.auth == api.PUBLIC:
                api_key = self.authenticate(request, self.config.public_key, body.get("key"))
                body.pop("key", None)
            else:
                api_key = self.authenticate(request, self.config.secret_key)
        except ApiError as exc:
            return error_response(exc)

        faults = self.faults.decide_request()
        if faults.error:  # answered without processing (and never stored)
            if faults.latency_s:
                self._sleep(faults.latency_s)
            return error_response(service_unavailable())

        key = request.header("Idempotency-Key") if request.method == "POST" else None
        scope = scope_for(api_key)
        started = False
        response: Response | None = None
        if key is not None:
            begin = self.idempotency.begin(scope, key, request.method, request.target,
                                           request.body)
            if begin.error is not None:
                response = error_response(begin.error)
            elif begin.replay is not None:
                status, replay_body = begin.replay
                response = Response(status, replay_body, headers=[("Idempotent-Replayed", "true")])
            else:
                started = True
        try:
            if faults.timeout_s:  # a slow PSP: hold the request, then process it anyway
                self._sleep(faults.timeout_s)
            if response is None:
                response = self._run(route, params, body, request)
            if faults.latency_s:  # inside the idempotency window, like real processing time
                self._sleep(faults.latency_s)
        except BaseException:
            if started:
                self.idempotency.abort(scope, key or "")
            raise
        assert response is not None
        if started:  # stored before a lost response is dropped, so a retry replays it
            self.idempotency.finish(scope, key or "", response.status, response.body)
        return None if faults.lose_response else response

    def _run(self, route: api.Route, params: dict[str, str], body: dict[str, Any],
             request: Request) -> Response:
        try:
            status, payload = route.handler(self.sim, api.ApiCall(body=body, query=request.query,
                                                                   params=params))
            return Response(status, encode_json(payload))
        except ApiError as exc:
            return error_response(exc)
        except Exception:
            logger.exception("unhandled error in %s %s", request.method, request.path)
            return error_response(internal_error())


class RequestHandler(BaseHTTPRequestHandler):
    """Thin adapter from :mod:`http.server` to :class:`App`."""

    server: "SimulatorHTTPServer"
    protocol_version = "HTTP/1.1"
    server_version = "psp-simulator"
    sys_version = ""
    timeout = 120  # seconds an idle keep-alive connection may linger

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's
        # algorithm plus delayed ACKs add ~40 ms to every keep-alive response.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(1024)
                length = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if length == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                size += length
                if size > MAX_BODY_BYTES:
                    raise OverflowError
                chunks.append(self.rfile.read(length))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY_BYTES:
            raise OverflowError
        return self.rfile.read(length) if length else b""

    def _handle(self, method: str) -> None:
        try:
            body = self._read_body()
        except (OverflowError, ValueError):
            self.close_connection = True
            self._write(error_response(ApiError(
                413, "invalid_request_error", "request_too_large",
                f"Request bodies are limited to {MAX_BODY_BYTES} bytes.")), method)
            return
        request = Request(method=method, target=self.path, headers=self.headers, body=body)
        try:
            response = self.server.app.handle(request)
        except Exception:
            logger.exception("unhandled error in %s %s", method, request.path)
            response = error_response(internal_error())
        if response is None:
            logger.info('"%s %s" response dropped (lose_response fault)', method, request.path)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._write(response, method)

    def _write(self, response: Response, method: str) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Request-Id", new_id("req"))
            for name, value in response.headers:
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if method != "HEAD" and response.body:
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        logger.info("%s %s", self.address_string(), format % args)


class SimulatorHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that owns the simulator's store and workers."""

    daemon_threads = True
    block_on_close = False  # a request held by a timeout fault must not block shutdown
    allow_reuse_address = True
    # socketserver's default backlog is 5: a burst of shop threads and browsers connecting at once overflowed
    # it, the kernel dropped their SYNs, and the shop's 1 s connect timeout ran out before the retry
    # (hosted sessions that never reached the PSP, in the throughput benchmark). A real PSP does not do that.
    request_queue_size = 128
    app: App
    public_url: str

    def __init__(self, address: tuple[str, int]) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, RequestHandler)
        self._workers: list[Any] = []
        self._store: Store | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound socket."""
        host, port = self.server_address[:2]
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"

    def server_close(self) -> None:
        super().server_close()
        for worker in self._workers:
            worker.stop()
        self._workers = []
        if self._store is not None:
            self._store.close()
            self._store = None


def make_server(config: Config) -> SimulatorHTTPServer:
    """Bind the socket, open the database and start the background workers."""
    server = SimulatorHTTPServer((config.host, config.port))
    try:
        store = Store(config.db_path)
    except Exception:
        server.server_close()
        raise
    store.clear_inflight_idempotency()
    public_url = (config.public_url or server.url).rstrip("/")
    faults = FaultInjector(store)
    sim = Simulator(store, faults, public_url=public_url, webhook_url=config.webhook_url)
    dispatcher = WebhookDispatcher(store, faults, config.webhook_secret,
                                   url_getter=lambda: sim.webhook_url)
    sim.on_event = dispatcher.wake
    settler = AsyncSettler(sim.settle_due)
    server.app = App(config, store, faults, sim, dispatcher)
    server.public_url = public_url
    server._store = store
    server._workers = [settler, dispatcher]
    dispatcher.start()
    settler.start()
    return server
