"""A real HTTP server on 127.0.0.1 that speaks OpenAI's ``POST /v1/chat/completions``.

By default every request is answered by ``responder(body)`` (a JSON-able object sent as the
message content; the default picks the first option of the requested JSON schema's enum with
confidence 0.9, or a fixed summary). The next requests can be scripted, one reply each, in
order: a valid answer, text that is not JSON, a truncated or refused answer, an HTTP error, a
delay. Every request is recorded with its body.

    with FakeChat() as server:
        server.script(Reply({"label": "nope", "confidence": 0.9}), HttpError(503))
        ...  # point a client at server.base_url
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from tests.fake_openai import Delay, HttpError

DEFAULT_SUMMARY = "The parcel is late. The customer asked for a new delivery date."


@dataclass(frozen=True)
class Reply:
    """Answer with this content (a JSON-able object is sent as JSON text)."""

    content: Any


@dataclass(frozen=True)
class Raw:
    """Answer with this text as the message content (e.g. something that is not JSON)."""

    text: str


@dataclass(frozen=True)
class Truncated:
    """Answer with half a JSON object and ``finish_reason: length``."""


@dataclass(frozen=True)
class Refused:
    """Answer with a refusal and no content."""


Script = Reply | Raw | Truncated | Refused | HttpError | Delay


def default_responder(body: dict[str, Any]) -> Any:
    """The first enum option of the requested schema with confidence 0.9; a fixed summary
    when the schema asks for one."""
    schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
    properties = schema.get("properties", {})
    if "summary" in properties:
        return {"summary": DEFAULT_SUMMARY}
    answer: dict[str, Any] = {}
    for name, spec in properties.items():
        if "enum" in spec:
            answer[name] = spec["enum"][0]
    answer["confidence"] = 0.9
    return answer


@dataclass
class _State:
    responder: Callable[[dict[str, Any]], Any]
    script: deque[Script] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)


class FakeChat:
    def __init__(self, responder: Callable[[dict[str, Any]], Any] = default_responder) -> None:
        self._state = _State(responder=responder)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self._state))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request body so far, in arrival order (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    def respond_with(self, responder: Callable[[dict[str, Any]], Any]) -> None:
        with self._state.lock:
            self._state.responder = responder

    def script(self, *replies: Script) -> None:
        """Answer the next requests with ``replies``, one each, after any already scripted."""
        with self._state.lock:
            self._state.script.extend(replies)

    def start(self) -> FakeChat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._state.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FakeChat:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def user_text(body: dict[str, Any]) -> str:
    """The user message of a recorded request."""
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = {}
            with state.lock:
                planned = state.script.popleft() if state.script else None
                state.requests.append(body)
                responder = state.responder
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._error(404, f"no route for POST {self.path}")
                return
            if isinstance(planned, HttpError):
                headers = {}
                if planned.retry_after is not None:
                    headers["Retry-After"] = planned.retry_after
                if planned.retry_after_ms is not None:
                    headers["retry-after-ms"] = planned.retry_after_ms
                self._error(planned.status, planned.message, headers)
                return
            if isinstance(planned, Delay) and state.closing.wait(planned.seconds):
                return
            content: str | None
            finish, refusal = "stop", None
            if isinstance(planned, Reply):
                content = _as_text(planned.content)
            elif isinstance(planned, Raw):
                content = planned.text
            elif isinstance(planned, Truncated):
                content, finish = '{"label": "carr', "length"
            elif isinstance(planned, Refused):
                content, refusal = None, "I can't help with that."
            else:
                content = _as_text(responder(body))
            self._send(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", ""),
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": content,
                                "refusal": refusal,
                            },
                            "finish_reason": finish,
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                },
            )

        def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
            kind = "invalid_request_error" if status < 500 else "server_error"
            self._send(status, {"error": {"message": message, "type": kind, "code": None}}, headers)

        def _send(
            self, status: int, payload: object, headers: dict[str, str] | None = None
        ) -> None:
            encoded = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(encoded)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def _as_text(content: Any) -> str:
    return content if isinstance(content, str) else json.dumps(content)
