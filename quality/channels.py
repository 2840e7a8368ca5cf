"""Where alert notifications go: the log (always), e-mail over SMTP, webhooks and Slack
(apprise URLs or Prefect notification blocks), and a Prefect event for every state change so
that Prefect Automations can act on alerts.

A channel sends one :class:`Notification` or raises :class:`ChannelError` naming itself; the
caller decides what a failure means (see :func:`deliver`).
"""

from __future__ import annotations

import html
import inspect
import logging
import smtplib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol

import apprise
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.context import FlowRunContext
from prefect.events import emit_event
from prefect.settings import PREFECT_API_URL
from prefect.utilities.asyncutils import run_coro_as_sync

from quality import smtp
from quality.alerts import Alert, AlertChange, PendingNotification, Severity, Transition
from quality.config import ChannelsConfig, EmailChannelConfig

log = logging.getLogger(__name__)

# What to look at first, per metric; shown in every notification of that metric.
HINTS: dict[str, str] = {
    "completeness_rate": "`enrich status` shows where records wait; `enrich failures` why.",
    "quality_score": "Check completeness, the failure rate and the classify stage's confidence.",
    "backlog_size": "Is the enrich deployment running, and keeping up? Add workers if not.",
    "failure_rate": "`enrich failures` groups the errors; a provider outage shows one type.",
    "freshness_sla_rate": "Records wait longer than the SLA: backlog, stuck leases or failures.",
    "dead_letters": "`enrich failures` lists them; `enrich retry` requeues after the fix.",
    "over_retry_limit": "Rows retried beyond their stage's limit: check retry settings.",
    "stuck_in_progress": "Leases expired: a worker died; the next enrich run reclaims them.",
}


class ChannelError(Exception):
    """A channel could not deliver: names the channel and why."""

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(f"{channel}: {reason}")
        self.channel = channel
        self.reason = reason


@dataclass(frozen=True)
class Notification:
    """One alert state change, rendered for people."""

    transition: Transition
    alert: Alert

    @classmethod
    def of(cls, item: PendingNotification | AlertChange) -> Notification:
        return cls(item.transition, item.alert)

    @property
    def headline(self) -> str:
        state = (
            "RESOLVED" if self.transition is Transition.RESOLVED else self.alert.severity.upper()
        )
        return f"{state} {self.alert.rule} ({self.alert.scope.label})"

    @property
    def subject(self) -> str:
        return f"[enrich] {self.headline}: {self.alert.message}"

    def fields(self) -> list[tuple[str, str]]:
        alert = self.alert
        rows = [
            ("Alert", f"{alert.rule} {self.transition}"),
            ("Severity", str(alert.severity)),
            ("Scope", alert.scope.label),
            ("Metric", alert.metric),
            ("Value", "-" if alert.value is None else f"{alert.value:.4g}"),
            ("Threshold", f"{alert.comparison} {alert.threshold:g}"),
            ("First seen", alert.first_seen.isoformat(timespec="seconds")),
            ("Last seen", alert.last_seen.isoformat(timespec="seconds")),
        ]
        if alert.resolved_at is not None:
            rows.append(("Resolved", alert.resolved_at.isoformat(timespec="seconds")))
        hint = HINTS.get(alert.metric)
        if hint:
            rows.append(("What to check", hint))
        return rows

    @property
    def text(self) -> str:
        lines = [self.alert.message, ""]
        lines += [f"{name}: {value}" for name, value in self.fields()]
        return "\n".join(lines) + "\n"

    @property
    def html(self) -> str:
        rows = "".join(
            f"<tr><th align='left'>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
            for name, value in self.fields()
        )
        return (
            f"<html><body><h2>{html.escape(self.headline)}</h2>"
            f"<p>{html.escape(self.alert.message)}</p><table>{rows}</table></body></html>"
        )

    def payload(self) -> dict[str, Any]:
        return {"transition": str(self.transition), **self.alert.as_dict()}


class Channel(Protocol):
    name: str

    def send(self, notification: Notification) -> None: ...

    def session(self) -> AbstractContextManager[object]:
        """Sends inside share what the channel sets up (a connection, a loaded block)."""
        ...


class LogChannel:
    """The log: always told, whatever else is configured."""

    name = "log"

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> None:
        self.logger = logger or log

    def send(self, notification: Notification) -> None:
        resolved = notification.transition is Transition.RESOLVED
        level = logging.INFO if resolved else logging.WARNING
        self.logger.log(level, "alert %s: %s", notification.transition, notification.subject)


class EmailChannel:
    """E-mail over SMTP, with a plain-text and an HTML part."""

    name = "email"

    def __init__(self, config: EmailChannelConfig) -> None:
        self.config = config
        self._server: tuple[smtplib.SMTP, str] | None = None  # connection and sender
        self._in_session = False

    @contextmanager
    def session(self) -> Iterator[None]:
        """One SMTP connection (and one block load) for the sends inside, opened by the first;
        a send that fails drops it, and the next one connects again."""
        if self._in_session:
            yield
            return
        self._in_session = True
        try:
            yield
        finally:
            self._in_session = False
            self._disconnect()

    def _disconnect(self) -> None:
        if self._server is not None:
            server, _ = self._server
            self._server = None
            with suppress(OSError, smtplib.SMTPException):
                server.quit()
            server.close()

    def message(self, notification: Notification, sender: str) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = notification.subject
        message["From"] = sender
        message["To"] = ", ".join(self.config.to)
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="enrich.local")
        message.set_content(notification.text)
        message.add_alternative(notification.html, subtype="html")
        return message

    def send(self, notification: Notification) -> None:
        with self.session():
            try:
                if self._server is None:
                    self._server = smtp.connect(self.config)
                server, sender = self._server
                server.send_message(self.message(notification, sender))
            except smtp.SmtpSetupError as err:
                raise ChannelError(self.name, str(err)) from err
            except (OSError, smtplib.SMTPException) as err:
                self._disconnect()
                where = smtp.server_label(self.config)
                raise ChannelError(self.name, f"SMTP via {where} failed: {err}") from err


_APPRISE_TYPES = {
    Transition.STARTED: apprise.NotifyType.WARNING,
    Transition.ESCALATED: apprise.NotifyType.FAILURE,
    Transition.DOWNGRADED: apprise.NotifyType.WARNING,
    Transition.RESOLVED: apprise.NotifyType.SUCCESS,
}


class AppriseChannel:
    """Webhooks, Slack, Teams, …: one apprise URL (``json://host/path``, ``slack://…``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        scheme = url.split("://", 1)[0]
        self.name = f"apprise:{scheme}"
        self._apprise = apprise.Apprise()
        if not self._apprise.add(url):
            raise ChannelError(self.name, f"not a URL apprise understands ({scheme}://…)")

    def session(self) -> AbstractContextManager[object]:
        return nullcontext()

    def send(self, notification: Notification) -> None:
        kind = _APPRISE_TYPES[notification.transition]
        if notification.transition is not Transition.RESOLVED and (
            notification.alert.severity is Severity.CRITICAL
        ):
            kind = apprise.NotifyType.FAILURE
        if not self._apprise.notify(
            title=notification.subject, body=notification.text, notify_type=kind
        ):
            raise ChannelError(self.name, "delivery failed (see the apprise log)")


class NotificationBlockChannel:
    """A Prefect notification block (SlackWebhook, CustomWebhookNotificationBlock, …) by its
    slug, ``block-type/name`` (e.g. ``slack-webhook/data-team``). The block is loaded by the
    first send and kept: channels are built for each monitor run."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.name = f"block:{slug}"
        self._block: NotificationBlock | None = None

    def session(self) -> AbstractContextManager[object]:
        return nullcontext()

    def _load(self) -> NotificationBlock:
        if self._block is None:
            try:
                block = Block.load(self.slug)
            except ValueError as err:
                raise ChannelError(self.name, f"cannot load the block: {err}") from err
            if not isinstance(block, NotificationBlock):
                kind = type(block).__name__
                raise ChannelError(self.name, f"{kind} is not a notification block")
            self._block = block
        return self._block

    def send(self, notification: Notification) -> None:
        block = self._load()
        try:
            sent = block.notify(notification.text, subject=notification.subject)
            if inspect.isawaitable(sent):  # a block with an async notify only
                run_coro_as_sync(sent)
        except Exception as err:
            raise ChannelError(self.name, f"{type(err).__name__}: {err}") from err


def events_available() -> bool:
    """Whether there is a Prefect API to send events to: one is configured, or this runs in a
    flow (which brought up its own). Outside both, emitting would start a temporary server."""
    return PREFECT_API_URL.value() is not None or FlowRunContext.get() is not None


def emit_alert_event(change: AlertChange) -> Any:
    """A Prefect event for one state change: ``enrich.alert.started`` (…``escalated``,
    ``downgraded``, ``resolved``) on the resource ``enrich.alert.<rule>.<scope>``, with the
    rule, severity and scope as resource labels for Automations to match on. Returns the event,
    or None where Prefect does not emit events (no API configured)."""
    alert = change.alert
    resource = {
        "prefect.resource.id": f"enrich.alert.{alert.rule}.{_slug(alert.scope.label)}",
        "prefect.resource.name": f"{alert.rule} ({alert.scope.label})",
        "enrich.rule": alert.rule,
        "enrich.metric": alert.metric,
        "enrich.severity": str(alert.severity),
        "enrich.scope": alert.scope.label,
        "enrich.workspace": alert.scope.workspace_id or "*",
        "enrich.source": alert.scope.source or "*",
        "enrich.stage": alert.scope.stage or "*",
    }
    payload = Notification.of(change).payload()
    if change.previous_severity is not None:
        payload["previous_severity"] = str(change.previous_severity)
    return emit_event(event=f"enrich.alert.{change.transition}", resource=resource, payload=payload)


def _slug(label: str) -> str:
    return label.replace(" ", ".").replace("=", "-")


def build_channels(config: ChannelsConfig) -> list[Channel]:
    """The configured channels besides the log (e-mail, apprise URLs, notification blocks)."""
    channels: list[Channel] = []
    if config.email is not None:
        channels.append(EmailChannel(config.email))
    channels += [AppriseChannel(url) for url in config.apprise_urls]
    channels += [NotificationBlockChannel(slug) for slug in config.notification_blocks]
    return channels


@dataclass
class Delivery:
    """What became of one notification."""

    notification: Notification
    delivered_to: list[str] = field(default_factory=list)
    errors: list[ChannelError] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        """Told somewhere: at least one channel took it (the log alone when none is set)."""
        return bool(self.delivered_to)

    def error_text(self) -> str | None:
        return "; ".join(str(error) for error in self.errors) or None


def deliver(
    notifications: Sequence[Notification],
    channels: Sequence[Channel],
    *,
    log_channel: LogChannel | None = None,
) -> list[Delivery]:
    """Send each notification to the log and to every channel. A channel that fails does not
    stop the others; with no channel configured the log counts as delivery."""
    log_channel = log_channel or LogChannel()
    deliveries = []
    with ExitStack() as sessions:  # one connection per channel for all the notifications
        for channel in channels:
            sessions.enter_context(channel.session())
        for notification in notifications:
            delivery = Delivery(notification)
            log_channel.send(notification)
            for channel in channels:
                try:
                    channel.send(notification)
                except ChannelError as err:
                    log_channel.logger.error("alert notification not delivered: %s", err)
                    delivery.errors.append(err)
                else:
                    delivery.delivered_to.append(channel.name)
            if not channels:
                delivery.delivered_to.append(log_channel.name)
            deliveries.append(delivery)
    return deliveries
