"""``ryla notify add|list|test|remove``: where people are told when they are needed.

A webhook URL (its path is its key) and an SMTP password are read from an environment variable
or a hidden prompt, never from the command line, and stored encrypted.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from functools import partial
from secrets import token_urlsafe

import click
import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from admin.context import BadInput, CliContext, split_values
from models import ChannelKind, Notification, NotificationStatus, NotifyChannel, utcnow
from pipeline.notify.causes import CAUSES
from pipeline.notify.channels import (
    FORMATS,
    SECURITY,
    ChannelIn,
    create_channel,
    get_channel,
    remove_channel,
)
from pipeline.notify.compose import new_notification
from pipeline.notify.deliver import deliver, make_sender
from pipeline.observe.logs import zoned

__all__ = ["notify", "notify_add", "notify_list", "notify_remove", "notify_test"]

_URL_ENV, _KEY_ENV, _PASSWORD_ENV = (
    "RYLA_NOTIFY_WEBHOOK_URL",
    "RYLA_NOTIFY_SIGNING_KEY",
    "RYLA_NOTIFY_SMTP_PASSWORD",
)


def _secret(env: str, prompt: str, *, required: bool) -> str:
    if value := os.environ.get(env):
        return value
    if not sys.stdin.isatty():
        if required:
            raise BadInput(f"no terminal to ask for the {prompt}: set {env}; nothing was written")
        return ""
    return str(
        click.prompt(f"{prompt} (or set {env})", hide_input=True, default="", show_default=False)
    )


@click.group()
def notify() -> None:
    """Notification channels: a signed webhook (Slack, Discord, n8n) or e-mail over SMTP."""


@notify.command("add")
@click.argument("name")
@click.option("--webhook", "kind", flag_value="webhook", help="POST to a webhook URL (asked for).")
@click.option("--email", "to", default=None, help="E-mail these addresses (comma-separated).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="webhook: payload shape; auto guesses Slack or Discord from the URL.",
)
@click.option("--from", "sender", default=None, help="email: the From address.")
@click.option("--smtp-host", default=None, help="email: the SMTP server.")
@click.option("--smtp-port", type=int, default=587, show_default=True)
@click.option("--security", type=click.Choice(SECURITY), default="starttls", show_default=True)
@click.option("--smtp-user", default=None, help="email: log in as this user (password asked for).")
@click.option("--cause", "causes", multiple=True, help=f"Only these causes: {', '.join(CAUSES)}.")
@click.option(
    "--window",
    type=click.IntRange(1, 10_080),
    default=60,
    show_default=True,
    help="Minutes: at most one message per cause in each window.",
)
@click.option("--digest", "digest_at", default=None, help="Also send a daily digest at HH:MM.")
@click.option("--digest-only", is_flag=True, help="Only the daily digest, no immediate messages.")
@click.option("--timezone", default="UTC", show_default=True, help="The digest's time zone.")
@click.pass_obj
def notify_add(obj: CliContext, name: str, kind: str | None, to: str | None, fmt: str,
               sender: str | None, smtp_host: str | None, smtp_port: int, security: str,
               smtp_user: str | None, causes: tuple[str, ...], window: int,
               digest_at: str | None, digest_only: bool, timezone: str) -> None:  # fmt: skip
    """Add a channel; it hears of what happens from now on."""
    if (kind is None) == (to is None):
        raise BadInput("give either --webhook or --email ADDRESS")
    make = partial(
        ChannelIn,
        causes=split_values(causes),
        window_seconds=window * 60,
        immediate=not digest_only,
        digest_at=digest_at,
        timezone=timezone,
    )
    generated = ""
    if kind == "webhook":
        url = _secret(_URL_ENV, "webhook URL", required=True)
        key = os.environ.get(_KEY_ENV) or (generated := token_urlsafe(32))
        data = make(name, ChannelKind.WEBHOOK, {"format": fmt}, {"url": url, "signing_key": key})
    else:
        config = {
            "to": split_values((to or "",)),
            "sender": sender or "",
            "smtp_host": smtp_host or "",
            "smtp_port": smtp_port,
            "security": security,
            "username": smtp_user or "",
        }
        password = _secret(_PASSWORD_ENV, "SMTP password", required=True) if smtp_user else ""
        data = make(name, ChannelKind.EMAIL, config, {"password": password})
    with obj.session() as session:
        channel = create_channel(session=session, settings=obj.settings, data=data, now=utcnow())
        click.echo(
            f"channel {channel.name} ({channel.kind}) added; `ryla notify test {name}` sends one"
        )
    if generated:
        # Shown once, so a receiver (n8n …) can check X-Ryla-Signature; stored encrypted.
        click.echo(f"  signing key for X-Ryla-Signature (shown once): {generated}")


def _where(channel: NotifyChannel) -> str:
    config = channel.config
    if channel.kind is ChannelKind.WEBHOOK:
        return f"{config.get('host', '-')} ({config.get('format', 'auto')})"
    return (
        f"{', '.join(config.get('to', []))} via {config.get('smtp_host')}:{config.get('smtp_port')}"
    )


@notify.command("list")
@click.pass_obj
def notify_list(obj: CliContext) -> None:
    """Every channel, what it hears of, and messages that may not have arrived."""
    with obj.session() as session:
        channels = session.scalars(select(NotifyChannel).order_by(NotifyChannel.id)).all()
        if not channels:
            click.echo("no channels: add one with `ryla notify add NAME --webhook` or `--email`")
        for channel in channels:
            _describe(session, channel)


def _describe(session: Session, channel: NotifyChannel) -> None:
    counts = dict(
        session.execute(
            select(Notification.status, func.count())
            .where(Notification.channel_id == channel.id)
            .group_by(Notification.status)
        ).all()
    )
    last = session.scalar(
        select(func.max(Notification.sent_at)).where(Notification.channel_id == channel.id)
    )
    hears = ", ".join(channel.causes) or "every cause"
    digest = f", digest at {channel.digest_at} {channel.timezone}" if channel.digest_at else ""
    mode = "" if channel.immediate else " (digest only)"
    click.echo(f"{channel.name}: {channel.kind.value} to {_where(channel)}{mode}")
    click.echo(
        f"  hears: {hears}; one message per cause every {channel.window_seconds // 60} min{digest}"
    )
    tally = ", ".join(f"{counts.get(s, 0)} {s.value}" for s in NotificationStatus)
    click.echo(f"  messages: {tally}; last sent {zoned(last) if last else 'never'}")
    doubtful = session.scalars(
        select(Notification)
        .where(Notification.channel_id == channel.id)
        .where(Notification.status.in_([NotificationStatus.UNKNOWN, NotificationStatus.FAILED]))
        .order_by(Notification.created_at.desc())
        .limit(5)
    ).all()
    for note in doubtful:
        click.echo(
            f"  {note.status.value.upper()} {zoned(note.created_at)} {note.title}: {note.error}"
        )


@notify.command("test")
@click.argument("name")
@click.pass_obj
def notify_test(obj: CliContext, name: str) -> None:
    """Send a test message now, through the same exactly-once path; exit 1 if it did not go."""
    now = utcnow()
    line = {
        "summary": f"a test from ryla on {socket.gethostname()}: this channel works",
        "hint": "",
    }
    with obj.session() as session:
        channel = get_channel(session, name)
        message = new_notification(channel.id, "test", now, "test notification", [line])
        session.add(message)
    # httpx logs request URLs (at -v): a hook's URL is its secret.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with httpx.Client(follow_redirects=False) as client:
        result = deliver(
            obj.session_factory,
            message.id,
            settings=obj.settings,
            send=make_sender(client),
            clock=utcnow,
            retry=False,  # a failed test is not sent later by a worker
        )
    status = result.status.value if result.status else "not sent"
    click.echo(f"{name}: {status} — {result.detail}")
    if result.status is not NotificationStatus.SENT:
        raise click.exceptions.Exit(1)


@notify.command("remove")
@click.argument("name")
@click.pass_obj
def notify_remove(obj: CliContext, name: str) -> None:
    """Remove a channel and its messages."""
    with obj.session() as session:
        remove_channel(session=session, name=name)
    click.echo(f"channel {name} removed")
