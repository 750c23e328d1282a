"""The booked customer's messages in the booking's language (fi, sv, en).

`render` takes what the message is about as plain values, so it needs no database; times are
shown in Helsinki time ("ti 15.12.2026 klo 10.00").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from signaling.directory.service_hours import HELSINKI

MESSAGE_LANGUAGES = ("fi", "sv", "en")
KINDS = ("confirmation", "rebooked", "cancelled", "reminder")

_DAYS = {
    "fi": ("ma", "ti", "ke", "to", "pe", "la", "su"),
    "sv": ("mån", "tis", "ons", "tors", "fre", "lör", "sön"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}

_T: dict[str, dict[str, str]] = {
    "fi": {
        "subject.confirmation": "Ajanvaraus vahvistettu: {authority} {when}",
        "subject.rebooked": "Ajanvaraus siirretty: {authority} {when}",
        "subject.cancelled": "Ajanvaraus peruttu: {authority} {when}",
        "subject.reminder": "Muistutus: {authority} {when}",
        "lead.confirmation": "Aikasi on varattu.",
        "lead.rebooked": "Aikasi on siirretty.",
        "lead.cancelled": "Aikasi on peruttu.",
        "lead.reminder": "Muistutus varatusta ajastasi.",
        "when": "Aika",
        "where": "Paikka",
        "service": "Asia",
        "remote": "Kotoa videolla",
        "interpreter": "Tulkki varattu: {language}",
        "code": "Varauskoodi",
        "join": "Liity videotapaamiseen",
        "manage": "Peru tai siirrä aika",
        "manage_code": "Peru tai siirrä aika varauskoodilla",
        "at_office": "Näytä varauskoodi palvelupisteen kioskilla tullessasi.",
        "sms": "{lead} {authority} {when}, {where}. Varauskoodi {code}. {link}",
    },
    "sv": {
        "subject.confirmation": "Tidsbokning bekräftad: {authority} {when}",
        "subject.rebooked": "Tidsbokning flyttad: {authority} {when}",
        "subject.cancelled": "Tidsbokning avbokad: {authority} {when}",
        "subject.reminder": "Påminnelse: {authority} {when}",
        "lead.confirmation": "Din tid är bokad.",
        "lead.rebooked": "Din tid har flyttats.",
        "lead.cancelled": "Din tid har avbokats.",
        "lead.reminder": "Påminnelse om din bokade tid.",
        "when": "Tid",
        "where": "Plats",
        "service": "Ärende",
        "remote": "Hemifrån med video",
        "interpreter": "Tolk bokad: {language}",
        "code": "Bokningskod",
        "join": "Anslut till videomötet",
        "manage": "Avboka eller flytta tiden",
        "manage_code": "Avboka eller flytta tiden med bokningskoden",
        "at_office": "Ange bokningskoden vid servicekontorets kiosk när du kommer.",
        "sms": "{lead} {authority} {when}, {where}. Bokningskod {code}. {link}",
    },
    "en": {
        "subject.confirmation": "Appointment confirmed: {authority} {when}",
        "subject.rebooked": "Appointment moved: {authority} {when}",
        "subject.cancelled": "Appointment cancelled: {authority} {when}",
        "subject.reminder": "Reminder: {authority} {when}",
        "lead.confirmation": "Your appointment is booked.",
        "lead.rebooked": "Your appointment has been moved.",
        "lead.cancelled": "Your appointment has been cancelled.",
        "lead.reminder": "A reminder of your appointment.",
        "when": "Time",
        "where": "Place",
        "service": "Matter",
        "remote": "From home by video",
        "interpreter": "Interpreter booked: {language}",
        "code": "Booking code",
        "join": "Join the video meeting",
        "manage": "Cancel or change the time",
        "manage_code": "Cancel or change the time with the booking code",
        "at_office": "Enter the booking code at the office's kiosk when you arrive.",
        "sms": "{lead} {authority} {when}, {where}. Booking code {code}. {link}",
    },
}


@dataclass(frozen=True)
class Message:
    subject: str
    body: str
    sms: str


def when_text(value: datetime, language: str) -> str:
    local = value.astimezone(HELSINKI)
    day = _DAYS[language][local.weekday()]
    if language == "en":
        return f"{day} {local.day} {local.strftime('%b %Y')} at {local:%H:%M}"
    word = "klo" if language == "fi" else "kl."
    return f"{day} {local.day}.{local.month}.{local.year} {word} {local:%H.%M}"


def render(
    kind: str,
    language: str,
    *,
    authority: str,
    office: str,
    service: str,
    starts_at: datetime,
    code: str,
    remote: bool,
    interpreting: str | None,
    manage_url: str | None,
    book_url: str,
    join_url: str | None,
) -> Message:
    """The e-mail (subject, body) and the SMS of one message."""
    if language not in _T:
        language = "fi"
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}")
    t = _T[language]
    when = when_text(starts_at, language)
    where = t["remote"] if remote else office
    lines = [
        t[f"lead.{kind}"],
        "",
        f"{t['service']}: {authority} – {service}",
        f"{t['when']}: {when}",
        f"{t['where']}: {where}",
    ]
    if interpreting:
        lines.append(t["interpreter"].format(language=interpreting))
    lines.append(f"{t['code']}: {code}")
    link = ""
    if kind != "cancelled":
        if remote and join_url:
            lines += ["", f"{t['join']}: {join_url}"]
            link = join_url
        elif not remote:
            lines += ["", t["at_office"]]
        if manage_url:
            lines += ["", f"{t['manage']}: {manage_url}"]
            link = link or manage_url
        else:
            lines += ["", f"{t['manage_code']}: {book_url}"]
            link = link or book_url
    subject = t[f"subject.{kind}"].format(authority=authority, when=when)
    sms = (
        t["sms"]
        .format(
            lead=t[f"lead.{kind}"],
            authority=authority,
            when=when,
            where=where,
            code=code,
            link=link,
        )
        .strip()
    )
    return Message(subject=subject, body="\n".join(lines) + "\n", sms=sms)


__all__ = ["KINDS", "MESSAGE_LANGUAGES", "Message", "render", "when_text"]
