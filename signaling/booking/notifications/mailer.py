"""E-mail over SMTP with the standard library (`smtplib`, `email.message`), run in a thread so
the event loop never waits on the mail server. TLS: none, STARTTLS or implicit TLS."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from signaling.booking.notifications.sms import SendError


@dataclass(frozen=True)
class SmtpMailer:
    host: str
    port: int
    sender: str
    tls: str = "none"  # "none" | "starttls" | "tls"
    username: str = ""
    password: str = ""
    timeout: float = 10.0

    def build(
        self, to: str, subject: str, body: str, ics: bytes | None, ics_method: str = "PUBLISH"
    ) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="etapalvelu")
        message.set_content(body)
        if ics is not None:
            message.add_attachment(
                ics,
                maintype="text",
                subtype="calendar",
                filename="ajanvaraus.ics",
                params={"method": ics_method},
            )
        return message

    def _send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.tls == "tls":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.tls == "starttls":
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(message)

    async def send(
        self, to: str, subject: str, body: str, ics: bytes | None, ics_method: str = "PUBLISH"
    ) -> None:
        message = self.build(to, subject, body, ics, ics_method)
        try:
            await asyncio.to_thread(self._send, message)
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}") from exc


__all__ = ["SmtpMailer"]
