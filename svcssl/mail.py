"""SMTP notifications to the administrator."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from .errors import SvcsslError
from .settings import NotifySettings


class MailError(SvcsslError):
    pass


def mail_configured(notify: NotifySettings) -> bool:
    return bool(notify.smtp_host and notify.recipient)


def send_mail(notify: NotifySettings, subject: str, body: str, *, timeout: float = 20.0) -> None:
    """Send one plain-text message through the configured relay; MailError on any failure."""
    if not mail_configured(notify):
        raise MailError("no mail relay or recipient is configured ([notify] smtp_host and recipient)")
    message = EmailMessage()
    message["From"] = notify.sender
    message["To"] = notify.recipient
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=notify.sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    try:
        with smtplib.SMTP(notify.smtp_host, notify.smtp_port, timeout=timeout) as smtp:
            smtp.ehlo()
            if notify.starttls:
                # A relay with a private CA's certificate is checked against [notify] ca_file, else the system's CAs.
                smtp.starttls(context=ssl.create_default_context(cafile=str(notify.ca_file) if notify.ca_file else None))
                smtp.ehlo()
            if notify.username:
                password = notify.password_file.read_text().strip() if notify.password_file else ""
                smtp.login(notify.username, password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"mail to {notify.recipient} via {notify.smtp_host}:{notify.smtp_port} failed: {exc}") from None
