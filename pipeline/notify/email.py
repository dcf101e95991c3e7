"""Notifications by e-mail over SMTP (STARTTLS, implicit TLS, or plain for a local relay).

Connecting and logging in happen before the checkpoint: a failure there surely sent nothing.
The Message-ID carries the notification id, so mail systems that dedupe on it drop a repeat.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from pipeline.errors import DeliveryUnknown, NotDelivered
from pipeline.notify.message import Checkpoint, Outgoing

__all__ = ["build_email", "send_email"]


def build_email(message: Outgoing) -> EmailMessage:
    config = message.config
    mail = EmailMessage()
    mail["Subject"] = message.title
    mail["From"] = str(config["sender"])
    mail["To"] = ", ".join(config["to"])
    mail["Date"] = format_datetime(message.created_at)
    mail["Message-ID"] = make_msgid(idstring=message.id, domain="ryla.notify")
    mail["X-Ryla-Notification"] = message.id
    mail["X-Ryla-Cause"] = message.cause
    mail["X-Ryla-Window"] = message.window_start.isoformat()
    mail.set_content(
        f"{message.body}\n\n-- \nRYLA notification {message.id} ({message.cause}) to channel "
        f"{message.channel}. `ryla status` shows everything that waits for a person.\n"
    )
    return mail


def _connect(config: dict[str, object], password: str, timeout: float) -> smtplib.SMTP:
    host, port = str(config["smtp_host"]), int(str(config["smtp_port"]))
    security = str(config.get("security") or "starttls")
    smtp: smtplib.SMTP
    if security == "ssl":
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    try:
        smtp.ehlo()
        if security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if config.get("username"):
            smtp.login(str(config["username"]), password)
    except BaseException:
        smtp.close()
        raise
    return smtp


def send_email(message: Outgoing, checkpoint: Checkpoint, *, timeout: float = 30.0) -> str:
    host = f"{message.config.get('smtp_host')}:{message.config.get('smtp_port')}"
    mail = build_email(message)
    try:
        smtp = _connect(message.config, str(message.secrets.get("password") or ""), timeout)
    except smtplib.SMTPAuthenticationError as exc:
        raise NotDelivered(
            f"SMTP {host} refused the login ({exc.smtp_code}): fix the user or password, then "
            "add the channel again",
            retry=False,
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise NotDelivered(f"SMTP {host}: no session ({type(exc).__name__})", retry=True) from None
    try:
        checkpoint()
        refused = smtp.send_message(mail)
    except smtplib.SMTPRecipientsRefused:
        raise NotDelivered(f"SMTP {host} refused every recipient", retry=False) from None
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        retry = 400 <= exc.smtp_code < 500
        raise NotDelivered(
            f"SMTP {host} refused the message ({exc.smtp_code})", retry=retry
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryUnknown(
            f"SMTP {host}: the answer was lost ({type(exc).__name__}); it may have arrived"
        ) from None
    finally:
        _quit(smtp)
    if refused:
        return f"SMTP {host} accepted it; refused {', '.join(sorted(refused))}"
    return f"SMTP {host} accepted it"


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()
