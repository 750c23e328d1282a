"""Issue 17 over real sockets and HTTP: the clerk's desk entries in the signed log, the
customer's receipt and its verification, the kiosk's anonymous feedback. The service tests run
twice: on SQLite and on a throwaway PostgreSQL database (tests/support/databases.py)."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import sys
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import socketio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, inspect, select, text, update

from signaling.db import utcnow
from signaling.records.record_signing import sign_record
from signaling.records.service_log import record_document
from signaling.store.desk_models import FeedbackClaim, FeedbackTally, Receipt
from signaling.store.flow_models import Call, ServiceLogEntry
from tests.expert_console.people import another_kiosk
from tests.signaling.flow_support import call
from tests.support.service import LiveService, make_live_service
from tests.support.signing import file_signed_over_socket, register_key_over_socket

# --- the service, on SQLite and on PostgreSQL --------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> str | None:
    """None: the service's own SQLite file; else a freshly emptied PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest_asyncio.fixture
async def live_service(tmp_path: Any, database: str | None) -> Any:
    """This module's whole service (shadows tests/support/service.py's) on either database."""
    overrides = {"database_url": database} if database else {}
    async with make_live_service(tmp_path, **overrides) as live:
        yield live


# --- helpers ----------------------------------------------------------------------------------


async def _get(live: LiveService, path: str, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{live.base_url}{path}", headers=headers) as response,
    ):
        body = await response.text()
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, body


async def cli(live: LiveService, *args: str) -> tuple[int, str]:
    """The real `etapalvelu` command line against the running service's data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETAPALVELU_")}
    database = ["--database-url", live.settings.database_url] if live.settings.database_url else []
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signaling",
        *args,
        "--data-dir",
        str(live.settings.data_dir),
        *database,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def log_size(live: LiveService) -> int:
    async with live.services.sessions() as session:
        return int((await session.execute(select(func.count(ServiceLogEntry.seq)))).scalar_one())


async def tamper(live: LiveService, seq: int, old: str, new: str) -> None:
    """Edit one entry's record in the database, as someone with database access would: the
    append-only triggers go first."""
    async with live.services.sessions() as session:
        if session.bind.dialect.name == "postgresql":
            await session.execute(
                text("DROP TRIGGER IF EXISTS service_log_append_only ON service_log")
            )
        else:
            await session.execute(text("DROP TRIGGER IF EXISTS service_log_no_update"))
        await session.execute(
            text("UPDATE service_log SET record = replace(record, :old, :new) WHERE seq = :seq"),
            {"old": old, "new": new, "seq": seq},
        )
        await session.commit()


async def authority_ids(client: socketio.AsyncClient) -> dict[str, int]:
    ack = await call(client, "desk:services")
    assert ack["ok"], ack
    return {a["code"]: a["id"] for a in ack["authorities"]}


async def file_desk(
    clerk: socketio.AsyncClient, key: Ed25519PrivateKey, authority_id: int, service: str
) -> dict[str, Any]:
    draft = await call(clerk, "desk:draft", {"authority_id": authority_id, "desk_service": service})
    assert draft["ok"], draft
    assert draft["canonical"] == json.dumps(
        draft["body"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return await call(
        clerk,
        "desk:file",
        {
            "authority_id": authority_id,
            "desk_service": service,
            "served_at": draft["body"]["served_at"],
            "signature": sign_record(draft["body"], key),
        },
    )


async def served_call(
    live: LiveService, kiosk: socketio.AsyncClient, expert: socketio.AsyncClient
) -> int:
    took = await call(kiosk, "ticket:take", {"authority": "kela", "language": "fin"})
    assert took["ok"], took
    taken = await call(expert, "queue:take_next", {})
    assert taken["ok"], taken
    return int(taken["call"]["id"])


def reason_of(ack: dict[str, Any]) -> tuple[str, str | None]:
    assert not ack["ok"], ack
    return ack["error"]["code"], ack["error"].get("reason")


# --- desk entries -----------------------------------------------------------------------------


async def test_clerk_desk_entries_are_signed_chained_and_counted(
    live_service: LiveService,
) -> None:
    live = live_service
    clerk = await live.connect_user("sihteeri")
    key = await register_key_over_socket(clerk, live.demo.user_ids["sihteeri"])
    services = await call(clerk, "desk:services")
    assert [s["code"] for s in services["services"]] == [
        "assisted_eservice",
        "form_handed_over",
        "identity_check",
        "other",
    ]
    assert services["services"][0]["name"]["sv"] == "Assisterad e-tjänst"
    ids = await authority_ids(clerk)

    first = await file_desk(clerk, key, ids["kela"], "assisted_eservice")
    assert first["ok"], first
    entry = first["entry"]
    assert entry["kind"] == "desk" and entry["seq"] == 1 and entry["signature"]
    body = entry["body"]
    assert body["clerk_name"] == "Sanna Palvelusihteeri" and body["authority_code"] == "kela"
    assert body["office_id"] == live.demo.office_id and "call_id" not in body
    assert (await file_desk(clerk, key, ids["kela"], "form_handed_over"))["ok"]
    assert (await file_desk(clerk, key, ids["vero"], "identity_check"))["ok"]
    assert await log_size(live) == 3

    # A retry of the same signed entry (its answer was lost) files nothing new.
    draft = await call(clerk, "desk:draft", {"authority_id": ids["kela"], "desk_service": "other"})
    form = {
        "authority_id": ids["kela"],
        "desk_service": "other",
        "served_at": draft["body"]["served_at"],
        "signature": sign_record(draft["body"], key),
    }
    once = await call(clerk, "desk:file", form)
    again = await call(clerk, "desk:file", form)
    assert once["ok"] and again["ok"] and once["entry"]["seq"] == again["entry"]["seq"] == 4
    assert await log_size(live) == 4

    # Only a clerk files desk entries.
    kiosk = await live.connect_kiosk()
    for username in ("kela", "tulkki", "admin"):
        other = await live.connect_user(username)
        ack = await call(
            other, "desk:draft", {"authority_id": ids["kela"], "desk_service": "other"}
        )
        assert reason_of(ack)[0] == "forbidden", username
        assert reason_of(await call(other, "desk:file", form))[0] == "forbidden"
    assert reason_of(await call(kiosk, "desk:file", form))[0] == "forbidden"

    # Garbage is refused with a clear error and changes nothing.
    now = utcnow()
    other_body = {**draft["body"], "desk_service": "identity_check"}
    bad_forms: list[tuple[dict[str, Any], str | None]] = [
        ({**form, "desk_service": "coffee"}, "unknown_desk_service"),
        ({**form, "authority_id": 0}, None),
        ({**form, "authority_id": 999999}, None),
        ({**form, "authority_id": "kela"}, None),
        ({**form, "signature": sign_record(other_body, key)}, "bad_signature"),
        ({**form, "signature": "A" * 86}, "bad_signature"),
        ({**form, "signature": "short"}, None),
        ({**form, "served_at": "not a time at all, not at all"}, "bad_served_at"),
        ({**form, "served_at": "2026-11-05T09:00:00.000000"}, "bad_served_at"),
        ({**form, "served_at": (now + timedelta(hours=1)).isoformat()}, "bad_served_at"),
        ({**form, "served_at": (now - timedelta(hours=1)).isoformat()}, "stale_draft"),
        ({**form, "extra": 1}, None),
        ({k: v for k, v in form.items() if k != "signature"}, None),
    ]
    for bad, reason in bad_forms:
        ack = await call(clerk, "desk:file", bad)
        code, got = reason_of(ack)
        assert code == "invalid", (bad, ack)
        if reason:
            assert got == reason, (bad, ack)
    assert reason_of(await call(clerk, "desk:draft", "garbage"))[0] == "invalid"
    assert await log_size(live) == 4

    history = await call(clerk, "desk:history", {"limit": 10})
    assert [e["seq"] for e in history["entries"]] == [4, 3, 2, 1]

    # The chain, with the clerk's signatures, verifies over HTTP and on the command line.
    admin = await live.issue_token("admin")
    status, verified = await _get(live, "/api/log/verify", admin)
    assert status == 200 and verified["valid"] and verified["entries"] == 4, verified
    code, out = await cli(live, "admin", "log", "verify")
    assert code == 0 and "service log OK: 4 entries" in out, out

    # Statistics and the compensation CSV count them per authority.
    status, stats = await _get(live, "/api/stats?by=authority", admin)
    by_code = {r["authority_code"]: r for r in stats["rows"]}
    assert by_code["kela"]["desk_services"] == 3 and by_code["vero"]["desk_services"] == 1
    assert by_code["kela"]["services"] == 0
    assert by_code["kela"]["desk_by_service"] == {
        "assisted_eservice": 1,
        "form_handed_over": 1,
        "identity_check": 0,
        "other": 1,
    }
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{live.base_url}/api/stats/compensation.csv",
            headers={"Authorization": f"Bearer {admin}"},
        ) as response,
    ):
        sheet = list(csv.DictReader(io.StringIO(await response.text())))
    rows = {r["authority_code"]: r for r in sheet}
    assert rows["kela"]["desk_services"] == "3" and rows["kela"]["desk_other"] == "1"
    assert rows["kela"]["desk_assisted_eservice"] == "1" and rows["kela"]["services"] == "0"
    assert (
        rows["vero"]["desk_identity_check"] == "1"
        and rows["vero"]["office"] == "Kirjasto Kallio, Helsinki"
    )

    # An edited desk entry breaks the chain: verify names it.
    await tamper(live, 2, "form_handed_over", "identity_check")
    status, verified = await _get(live, "/api/log/verify", admin)
    assert not verified["valid"] and verified["first_broken"]["seq"] == 2, verified
    code, out = await cli(live, "admin", "log", "verify")
    assert code == 1 and "BROKEN at entry 2" in out, out


# --- receipts ---------------------------------------------------------------------------------


async def test_receipt_is_issued_at_call_end_and_verifies_against_the_log(
    live_service: LiveService,
) -> None:
    live = live_service
    kiosk = await live.connect_kiosk()
    expert = await live.connect_user("kela")
    call_id = await served_call(live, kiosk, expert)
    digest = hashlib.sha256(b"hakemus.pdf contents").hexdigest()
    async with live.services.sessions() as session:
        await record_document(
            session,
            call_id=call_id,
            sha256=digest,
            size=20,
            type="application/pdf",
            sender="customer",
            receiver="expert",
            received_at=utcnow(),
        )
        await session.commit()
    assert reason_of(await call(kiosk, "receipt:issue", {"call_id": call_id})) == (
        "conflict",
        "call_active",
    )
    assert (await call(expert, "call:end", {"call_id": call_id}))["ok"]

    # Only the call's own kiosk; garbage refused.
    other_kiosk = await another_kiosk(live, "Kallio kioski 2")
    assert reason_of(await call(other_kiosk, "receipt:issue", {"call_id": call_id})) == (
        "forbidden",
        "not_your_call",
    )
    assert reason_of(await call(expert, "receipt:issue", {"call_id": call_id}))[0] == "forbidden"
    for bad in ({"call_id": 0}, {"call_id": "x"}, {}, {"call_id": call_id, "more": 1}):
        assert reason_of(await call(kiosk, "receipt:issue", bad))[0] == "invalid", bad
    assert reason_of(await call(kiosk, "receipt:issue", {"call_id": 99999}))[0] == "not_found"
    assert await log_size(live) == 1

    issued = await call(kiosk, "receipt:issue", {"call_id": call_id})
    assert issued["ok"], issued
    receipt = issued["receipt"]
    assert len(receipt["code"]) == 9 and receipt["code"][4] == "-"
    assert (
        receipt["office_name"] == "Kirjasto Kallio, Helsinki"
        and receipt["authority_code"] == "kela"
    )
    assert receipt["authority_name"]["sv"] == "FPA"
    assert receipt["documents"] == [{"seq": 1, "sha256": digest}]
    assert receipt["log_seq"] == 2 and receipt["record_seq"] is None
    async with live.services.sessions() as session:
        row = await session.get(Call, call_id)
        assert row is not None
        from signaling.flow.flow_common import iso

        assert receipt["pending_at"] == iso(row.started_at)
    # Nothing about the customer: no ticket, no call id, no names but the expert's.
    assert set(receipt) == {
        "code",
        "office_name",
        "authority_id",
        "authority_code",
        "authority_name",
        "expert_name",
        "pending_at",
        "issued_at",
        "log_seq",
        "record_seq",
        "documents",
    }
    again = await call(kiosk, "receipt:issue", {"call_id": call_id})
    assert again["receipt"]["code"] == receipt["code"] and await log_size(live) == 2

    # The expert files the record afterwards: it carries the receipt's code, signed.
    key = await register_key_over_socket(expert, live.demo.user_ids["kela"])
    filed = await file_signed_over_socket(
        expert, key, {"call_id": call_id, "service_type": "general_advice", "outcome": "pending"}
    )
    assert filed["ok"], filed
    assert filed["entry"]["body"]["receipt_code"] == receipt["code"].replace("-", "")
    reprint = await call(kiosk, "receipt:issue", {"call_id": call_id})
    assert reprint["receipt"]["record_seq"] == filed["entry"]["seq"] == 3

    admin = await live.issue_token("admin")
    expert_token = await live.issue_token("kela")
    path = f"/api/receipts/{receipt['code']}"
    assert (await _get(live, path, None))[0] == 401
    assert (await _get(live, path, expert_token))[0] == 403
    status, result = await _get(live, path, admin)
    assert status == 200 and result["valid"], result
    assert [c["name"] for c in result["checks"]] == [
        "log",
        "receipt_entry",
        "documents",
        "service_record",
    ]
    assert all(c["ok"] for c in result["checks"])
    # As the customer reads it out: lower case, without the dash.
    status, result = await _get(
        live, f"/api/receipts/{receipt['code'].lower().replace('-', '')}", admin
    )
    assert status == 200 and result["valid"]
    # An unknown code, a malformed one.
    unknown = "ZZZZ-ZZZZ" if receipt["code"] != "ZZZZ-ZZZZ" else "YYYY-YYYY"
    status, result = await _get(live, f"/api/receipts/{unknown}", admin)
    assert status == 404 and result["error"]["code"] == "not_found"
    status, result = await _get(live, "/api/receipts/IO01-abcd", admin)
    assert status == 400 and result["error"]["code"] == "invalid"

    code, out = await cli(live, "admin", "receipt", "verify", receipt["code"])
    assert code == 0 and f"receipt {receipt['code']} OK" in out, out
    code, out = await cli(live, "admin", "receipt", "verify", unknown)
    assert code == 1 and "NOT FOUND" in out, out
    code, out = await cli(live, "admin", "receipt", "verify", "nonsense!")
    assert code == 2, out

    # Someone edits the document's hash in the log: the receipt no longer verifies.
    await tamper(live, 1, digest, "0" * 64)
    status, result = await _get(live, path, admin)
    assert status == 200 and not result["valid"], result
    checks = {c["name"]: c for c in result["checks"]}
    assert not checks["log"]["ok"] and "entry 1" in checks["log"]["detail"]
    assert not checks["documents"]["ok"]
    code, out = await cli(live, "admin", "receipt", "verify", receipt["code"])
    assert code == 1 and "DOES NOT VERIFY" in out and "BAD log" in out, out


# --- feedback ---------------------------------------------------------------------------------


async def test_feedback_is_anonymous_once_per_call_and_counted(live_service: LiveService) -> None:
    live = live_service
    kiosk = await live.connect_kiosk()
    expert = await live.connect_user("kela")
    first = await served_call(live, kiosk, expert)
    assert reason_of(await call(kiosk, "feedback:give", {"call_id": first, "answer": "good"})) == (
        "conflict",
        "call_active",
    )
    assert (await call(expert, "call:end", {"call_id": first}))["ok"]
    second = await served_call(live, kiosk, expert)
    assert (await call(expert, "call:end", {"call_id": second}))["ok"]

    for bad in (
        {"call_id": first, "answer": "great"},
        {"call_id": first, "answer": "good", "reason": "weather"},
        {"call_id": first},
        {"call_id": first, "answer": "good", "ticket_id": 1},
        {"call_id": -1, "answer": "good"},
    ):
        assert reason_of(await call(kiosk, "feedback:give", bad))[0] == "invalid", bad
    other_kiosk = await another_kiosk(live, "Kallio kioski 2")
    assert reason_of(
        await call(other_kiosk, "feedback:give", {"call_id": first, "answer": "bad"})
    ) == ("forbidden", "not_your_call")
    assert (
        reason_of(await call(expert, "feedback:give", {"call_id": first, "answer": "bad"}))[0]
        == "forbidden"
    )

    assert (await call(kiosk, "feedback:give", {"call_id": first, "answer": "good"}))["ok"]
    assert reason_of(await call(kiosk, "feedback:give", {"call_id": first, "answer": "bad"})) == (
        "conflict",
        "already_answered",
    )
    ack = await call(
        kiosk, "feedback:give", {"call_id": second, "answer": "bad", "reason": "waiting"}
    )
    assert ack["ok"], ack

    async with live.services.sessions() as session:
        # What is stored: office, authority, hour, answer, reason and a count; no call,
        # ticket or kiosk.
        columns = await session.run_sync(
            lambda s: [c["name"] for c in inspect(s.connection()).get_columns("feedback_tallies")]
        )
        assert sorted(columns) == ["answer", "authority_id", "count", "hour", "office_id", "reason"]
        raw = (await session.execute(text("SELECT * FROM feedback_tallies"))).all()
        ticket_ids = {t for (t,) in (await session.execute(text("SELECT id FROM tickets"))).all()}
        tallies = (await session.execute(select(FeedbackTally))).scalars().all()
        got = sorted((t.answer, t.reason, t.count, t.office_id) for t in tallies)
        assert got == [
            ("bad", "waiting", 1, live.demo.office_id),
            ("good", "", 1, live.demo.office_id),
        ]
        ids = {first, second} | ticket_ids
        for row in raw:
            # Only the office and authority ids are numbers besides the count.
            numbers = {v for v in row if isinstance(v, int)}
            assert numbers <= {live.demo.office_id, tallies[0].authority_id, 1}, (row, ids)
        hour = tallies[0].hour
        assert len(hour) == 13 and hour[10] == "T"

        # Once the answer window of a call has passed, its claim is dropped.
        await session.execute(
            update(Call).where(Call.id == first).values(ended_at=utcnow() - timedelta(hours=1))
        )
        await session.commit()
    third = await served_call(live, kiosk, expert)
    assert (await call(expert, "call:end", {"call_id": third}))["ok"]
    assert (await call(kiosk, "feedback:give", {"call_id": third, "answer": "neutral"}))["ok"]
    assert reason_of(await call(kiosk, "feedback:give", {"call_id": first, "answer": "bad"})) == (
        "conflict",
        "feedback_window_closed",
    )
    async with live.services.sessions() as session:
        claims = {c.call_id for c in (await session.execute(select(FeedbackClaim))).scalars()}
        assert claims == {second, third}
        assert (await session.execute(select(func.count(Receipt.id)))).scalar_one() == 0

    admin = await live.issue_token("admin")
    assert (await _get(live, "/api/stats/feedback", None))[0] == 401
    assert (await _get(live, "/api/stats/feedback?by=weekday", admin))[0] == 400
    assert (await _get(live, "/api/stats/feedback?from=2026-13", admin))[0] == 400
    status, body = await _get(live, "/api/stats/feedback?by=authority", admin)
    assert status == 200
    [kela] = body["rows"]
    assert kela["authority_code"] == "kela"
    assert (kela["good"], kela["neutral"], kela["bad"], kela["answers"]) == (1, 1, 1, 3)
    assert kela["reasons"] == {"waiting": 1, "connection": 0, "service": 0, "other": 0}
    status, body = await _get(live, "/api/stats/feedback?by=authority_office", admin)
    [row] = body["rows"]
    assert row["office_name"] == "Kirjasto Kallio, Helsinki" and row["authority_code"] == "kela"
    month = hour[:7]
    status, body = await _get(live, f"/api/stats/feedback?by=office&from={month}&to={month}", admin)
    assert [(r["office_id"], r["answers"]) for r in body["rows"]] == [(live.demo.office_id, 3)]
    status, body = await _get(live, "/api/stats/feedback?from=2099-01", admin)
    assert body["rows"] == []


# --- schema -----------------------------------------------------------------------------------

