"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives, for e-mail tests."""

from __future__ import annotations

import socket
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller


class _Keep:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.sessions: list[Any] = []  # the SMTP sessions (connections) that sent mail

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        if not any(known is session for known in self.sessions):
            self.sessions.append(session)
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SmtpSink:
    """``with SmtpSink() as sink:`` listens on ``sink.port``; ``sink.received()`` parses what
    arrived into EmailMessage objects (with their envelope recipients)."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = _free_port()
        self._handler = _Keep()
        self._controller = Controller(self._handler, hostname=self.host, port=self.port)

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._controller.stop()

    @property
    def connections(self) -> int:
        """How many SMTP connections delivered the messages received."""
        return len(self._handler.sessions)

    def received(self) -> list[tuple[list[str], EmailMessage]]:
        parsed = []
        for recipients, raw in self._handler.messages:
            message = message_from_bytes(raw, policy=policy.default)
            assert isinstance(message, EmailMessage)
            parsed.append((recipients, message))
        return parsed
