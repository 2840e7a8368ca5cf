"""The quality report by e-mail: an HTML part with the charts inline (``cid:`` images in a
multipart/related), and a plain-text part, over SMTP.

The server and recipients are an ``EmailChannelConfig`` (the alert channel's settings), taken
from, in order: what the caller passes (``enrich report --to``, the flow's parameters), the
environment (``ENRICH_SMTP_*``, ``ENRICH_REPORT_TO``), and the alert e-mail channel
(``monitoring.channels.email`` of the configuration file). With no server anywhere the report
is not e-mailed.
"""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from enrichment.errors import EnrichmentError
from quality import smtp
from quality.config import EmailChannelConfig
from quality.report import RenderedReport


class ReportDeliveryError(EnrichmentError):
    """The report could not be e-mailed: names the server and why."""


class MailSettings(BaseSettings):
    """SMTP settings from the environment. The password is read from ``ENRICH_SMTP_PASSWORD``
    when a user is set, never stored in a file."""

    model_config = SettingsConfigDict(
        env_prefix="ENRICH_SMTP_", env_file=".env", extra="ignore", populate_by_name=True
    )

    block: str | None = Field(default=None, description="EmailServerCredentials block name.")
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = Field(
        default=None, validation_alias=AliasChoices("ENRICH_SMTP_USER", "ENRICH_SMTP_USERNAME")
    )
    sender: str | None = Field(
        default=None, validation_alias=AliasChoices("ENRICH_SMTP_FROM", "ENRICH_SMTP_SENDER")
    )
    timeout_seconds: float = Field(default=30.0, gt=0)
    to: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("ENRICH_REPORT_TO"),
        description="Report recipients, comma-separated.",
    )

    @field_validator("to", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


_ENV_NAMES = {
    "block": "ENRICH_SMTP_BLOCK",
    "host": "ENRICH_SMTP_HOST",
    "port": "ENRICH_SMTP_PORT",
    "security": "ENRICH_SMTP_SECURITY",
    "username": "ENRICH_SMTP_USER",
    "sender": "ENRICH_SMTP_FROM",
    "to": "ENRICH_REPORT_TO (or --to)",
}


def mail_config(
    *,
    to: Sequence[str] | None = None,
    block: str | None = None,
    channel: EmailChannelConfig | None = None,
    settings: MailSettings | None = None,
) -> EmailChannelConfig | None:
    """Where the report goes, or None when no SMTP server is configured anywhere.

    ``to`` and ``block`` are the caller's; then the environment (``settings``); ``channel``,
    the alert e-mail channel of the configuration file, serves for what neither gives.

    Raises ReportDeliveryError naming the setting when a server is configured but the
    settings do not make a usable e-mail (no recipients, no sender, a bad address).
    """
    env = settings or MailSettings()
    recipients = list(to or env.to or (channel.to if channel else []))
    server: dict[str, Any]
    if block or env.block or env.host:
        server = {
            "block": block or env.block,
            "host": None if (block or env.block) else env.host,
            "port": env.port,
            "security": env.security,
            "username": env.username,
            "sender": env.sender,
            "timeout_seconds": env.timeout_seconds,
        }
    elif channel is not None:
        server = channel.model_dump(exclude={"to"})
    else:
        return None
    try:
        return EmailChannelConfig(**server, to=recipients)
    except ValidationError as err:
        problems = "; ".join(
            f"{_ENV_NAMES.get(str(error['loc'][0]), error['loc'][0]) if error['loc'] else 'e-mail'}"
            f": {error['msg']}"
            for error in err.errors()
        )
        raise ReportDeliveryError(
            f"the report's e-mail settings are incomplete: {problems}"
        ) from None


def build_message(rendered: RenderedReport, *, sender: str, to: Sequence[str]) -> EmailMessage:
    """multipart/alternative: text/plain, then multipart/related (text/html + PNG charts
    referenced by Content-ID)."""
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="pg-enrich.local")
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    html_part = next(p for p in message.iter_parts() if p.get_content_type() == "text/html")
    for chart in rendered.charts:
        html_part.add_related(
            chart.png,
            maintype="image",
            subtype="png",
            cid=f"<{chart.cid}>",
            filename=f"{chart.name}.png",
            disposition="inline",
        )
    return message


def send_report(rendered: RenderedReport, config: EmailChannelConfig) -> EmailMessage:
    """Send the report to ``config.to``; returns the message sent."""
    try:
        server, sender = smtp.connect(config)
        with server:
            message = build_message(rendered, sender=sender, to=config.to)
            server.send_message(message)
    except smtp.SmtpSetupError as err:
        raise ReportDeliveryError(str(err)) from err
    except (OSError, smtplib.SMTPException) as err:
        raise ReportDeliveryError(f"SMTP via {smtp.server_label(config)} failed: {err}") from err
    return message
