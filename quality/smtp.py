"""An SMTP connection from an e-mail channel's configuration, for alert mails and reports
alike: a prefect-email ``EmailServerCredentials`` block, or host/port/security/user with the
password read from the environment (never from a file)."""

from __future__ import annotations

import os
import smtplib
import ssl

from prefect_email import EmailServerCredentials

from quality.config import EmailChannelConfig


class SmtpSetupError(Exception):
    """The configuration cannot give a connection (a missing block, user or password)."""


def server_label(config: EmailChannelConfig) -> str:
    return f"block {config.block!r}" if config.block else str(config.host)


def connect(config: EmailChannelConfig) -> tuple[smtplib.SMTP, str]:
    """An open (and logged-in) connection and the sender address."""
    if config.block is not None:
        try:
            credentials = EmailServerCredentials.load(config.block)
        except ValueError as err:
            raise SmtpSetupError(
                f"no EmailServerCredentials block {config.block!r}: {err}"
            ) from err
        sender = config.sender or credentials.username
        if not sender:
            raise SmtpSetupError(f"block {config.block!r} has no username: set the sender")
        return credentials.get_server(), sender
    assert config.host is not None  # validated: a block or a host
    server: smtplib.SMTP
    if config.security == "ssl":
        server = smtplib.SMTP_SSL(
            config.host,
            config.port or 465,
            timeout=config.timeout_seconds,
            context=ssl.create_default_context(),
        )
    else:
        default = 587 if config.security == "starttls" else 25
        server = smtplib.SMTP(config.host, config.port or default, timeout=config.timeout_seconds)
        if config.security == "starttls":
            server.starttls(context=ssl.create_default_context())
    if config.username:
        password = os.environ.get(config.password_env)
        if password is None:
            server.close()
            raise SmtpSetupError(
                f"SMTP user {config.username!r} is set but {config.password_env} is not"
            )
        server.login(config.username, password)
    return server, config.sender or config.username or ""
