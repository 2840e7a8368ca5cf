"""A real HTTP server on 127.0.0.1 that speaks OpenAI's ``POST /v1/embeddings``.

Embeddings are deterministic (a unit vector seeded by the text's hash, see
:func:`fake_embedding`). Faults are scripted for the next requests, one fault per request, in
order; requests after the script is used up are answered normally. Every request is recorded
with its body, headers and arrival time.

    with FakeOpenAI(dimensions=8) as server:
        server.script(HttpError(429, retry_after="2"), Delay(1.0))
        ...  # point a client at server.base_url
        assert len(server.requests) == 3
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import numpy as np


def fake_embedding(text: str, dimensions: int) -> list[float]:
    """The unit vector the fake server returns for ``text``: the same for the same text."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    vector = np.random.default_rng(seed).standard_normal(dimensions)
    return [float(x) for x in vector / np.linalg.norm(vector)]


@dataclass(frozen=True)
class HttpError:
    """Answer with ``status`` and an OpenAI-style error body (429, 500, 503, 400...)."""

    status: int
    retry_after: str | None = None
    retry_after_ms: str | None = None
    message: str = "scripted failure"


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before answering normally (longer than the client's timeout)."""

    seconds: float


@dataclass(frozen=True)
class WrongDimension:
    """Answer normally, but the vector for input ``item`` has ``dimensions`` numbers."""

    item: int
    dimensions: int


@dataclass(frozen=True)
class NotFinite:
    """Answer normally, but the vector for input ``item`` contains a NaN (sent as ``NaN``)."""

    item: int


@dataclass(frozen=True)
class Reversed:
    """Answer normally, but list the data items in reverse order (their ``index`` is right)."""


Fault = HttpError | Delay | WrongDimension | NotFinite | Reversed


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float  # time.monotonic()
    fault: Fault | None

    @property
    def inputs(self) -> list[str]:
        value = self.body.get("input", []) if isinstance(self.body, dict) else []
        return [value] if isinstance(value, str) else list(value)


@dataclass
class _State:
    dimensions: int
    faults: deque[Fault] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)


class FakeOpenAI:
    """The server; start it with ``with`` (or :meth:`start`/:meth:`stop`)."""

    def __init__(self, *, dimensions: int = 8) -> None:
        self._state = _State(dimensions=dimensions)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self._state))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def dimensions(self) -> int:
        return self._state.dimensions

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in arrival order (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    def script(self, *faults: Fault) -> None:
        """Apply ``faults`` to the next requests, one each, after any already scripted."""
        with self._state.lock:
            self._state.faults.extend(faults)

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._state.closing.set()  # cuts scripted delays short
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30  # an idle keep-alive connection frees its thread after this

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            with state.lock:
                fault = state.faults.popleft() if state.faults else None
                state.requests.append(
                    RecordedRequest(
                        method="POST",
                        path=self.path,
                        headers={key.lower(): value for key, value in self.headers.items()},
                        body=body,
                        received_at=time.monotonic(),
                        fault=fault,
                    )
                )
            if self.path.rstrip("/") != "/v1/embeddings":
                self._error(404, f"no route for POST {self.path}")
                return
            if isinstance(fault, HttpError):
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = fault.retry_after
                if fault.retry_after_ms is not None:
                    headers["retry-after-ms"] = fault.retry_after_ms
                self._error(fault.status, fault.message, headers)
                return
            if isinstance(fault, Delay) and state.closing.wait(fault.seconds):
                return
            if not isinstance(body, dict) or not isinstance(body.get("input"), list | str):
                self._error(400, "'input' must be a string or a list of strings")
                return
            self._embeddings(body, fault)

        def _embeddings(self, body: dict[str, Any], fault: Fault | None) -> None:
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            dimensions = int(body.get("dimensions") or state.dimensions)
            data = []
            for index, text in enumerate(texts):
                vector = fake_embedding(str(text), dimensions)
                if isinstance(fault, WrongDimension) and fault.item == index:
                    vector = fake_embedding(str(text), fault.dimensions)
                if isinstance(fault, NotFinite) and fault.item == index:
                    vector[0] = float("nan")
                data.append({"object": "embedding", "index": index, "embedding": vector})
            if isinstance(fault, Reversed):
                data.reverse()
            tokens = sum(len(str(text).split()) for text in texts)
            self._send(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": body.get("model", ""),
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
            )

        def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
            kind = "invalid_request_error" if status < 500 else "server_error"
            self._send(status, {"error": {"message": message, "type": kind, "code": None}}, headers)

        def _send(
            self, status: int, payload: object, headers: dict[str, str] | None = None
        ) -> None:
            encoded = json.dumps(payload).encode()  # allow_nan: NaN is written as NaN
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(encoded)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a scripted delay past its timeout)

    return Handler
