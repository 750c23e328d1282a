"""An iCalendar (RFC 5545) file with one event, written with the standard library.

One VEVENT needs a dozen lines; what matters is done here: CRLF line ends (§3.1), lines folded
at 75 octets without splitting a UTF-8 character (§3.1), TEXT values escaped (§3.3.11), times in
UTC with a trailing Z (§3.3.5, form #2), a stable UID so that a moved or cancelled booking
updates the same calendar entry, with SEQUENCE counting the changes (§3.8.7.4).
"""

from __future__ import annotations

from datetime import UTC, datetime

PRODID = "-//Etapalvelu//Booking//FI"


def escape(text: str) -> str:
    """A TEXT value (RFC 5545 §3.3.11)."""
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def fold(line: str) -> bytes:
    """One content line, folded to at most 75 octets per physical line (§3.1)."""
    data = line.encode("utf-8")
    parts: list[bytes] = []
    limit = 75
    while len(data) > limit:
        cut = limit
        # Never split a UTF-8 sequence: back up to the first byte of a character.
        while cut > 0 and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        parts.append(data[:cut])
        data = data[cut:]
        limit = 74  # a continuation line starts with a space
    parts.append(data)
    return b"\r\n ".join(parts) + b"\r\n"


def calendar(
    *,
    uid: str,
    starts_at: datetime,
    ends_at: datetime,
    summary: str,
    location: str,
    description: str = "",
    url: str | None = None,
    sequence: int = 0,
    cancelled: bool = False,
    stamp: datetime | None = None,
) -> bytes:
    """A VCALENDAR with one VEVENT (METHOD:PUBLISH, or CANCEL for a cancelled booking)."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        f"METHOD:{'CANCEL' if cancelled else 'PUBLISH'}",
        "BEGIN:VEVENT",
        f"UID:{escape(uid)}",
        f"DTSTAMP:{utc(stamp or datetime.now(UTC))}",
        f"DTSTART:{utc(starts_at)}",
        f"DTEND:{utc(ends_at)}",
        f"SEQUENCE:{int(sequence)}",
        f"SUMMARY:{escape(summary)}",
        f"LOCATION:{escape(location)}",
    ]
    if description:
        lines.append(f"DESCRIPTION:{escape(description)}")
    if url:
        lines.append(f"URL:{url}")
    lines.append(f"STATUS:{'CANCELLED' if cancelled else 'CONFIRMED'}")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return b"".join(fold(line) for line in lines)


__all__ = ["calendar", "escape", "fold", "utc"]
