"""No event, body or URL can make the database fail with an out-of-range id.

Every id column is an INTEGER (32 bits on PostgreSQL). An id beyond it that passed a schema
would fail in PostgreSQL ("integer out of range"): the client would get `internal`, not
`invalid`, and the server would log a fault for bad input. The schema tests walk every event
of the REGISTRY and every pydantic model of signaling/ for integer fields, so a new event with
a bare `int` is caught without this file knowing about it; the live tests send huge ids over a
real socket and HTTP, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import aiohttp
import pytest
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_settings import BaseSettings
from sqlalchemy import func, select

import signaling
from signaling.db import DB_INT_MAX, Base, DbId, parse_db_id
from signaling.server.features import FEATURE_MODULES
from signaling.transport.protocol import REGISTRY, EventModel
from tests.support.service import LiveService, make_live_service

FieldPath = tuple[str | int, ...]

# Integer fields that are neither stored nor compared with a column: big values are fine.
NOT_STORED: dict[tuple[str, FieldPath], str] = {
    ("signaling.transport.session_events.Ping", ("seq",)): "echoed back in the ack",
}
TOO_BIG = (DB_INT_MAX + 1, 2**40)
TOO_SMALL = (-1,)


# --- finding the integer fields -------------------------------------------------------------


def _ints_in(annotation: Any) -> list[FieldPath]:
    """Paths (below a field) at which `annotation` takes an integer: () for the field itself,
    (0, ...) into a list's item, ("k", ...) into a dict's value, (name, ...) into a model."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return _ints_in(args[0])
    if origin in (Union, types.UnionType):
        found: list[FieldPath] = []
        for arg in args:
            found += [p for p in _ints_in(arg) if p not in found]
        return found
    if origin is Literal:
        return [()] if any(type(a) is int for a in args) else []
    if origin in (list, tuple, set, frozenset):
        return [(0, *p) for p in _ints_in(args[0])] if args else []
    if origin is dict:
        return [("k", *p) for p in _ints_in(args[1])]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return integer_paths(annotation)
    return [()] if annotation is int else []


def integer_paths(model: type[BaseModel]) -> list[FieldPath]:
    paths: list[FieldPath] = []
    for name, info in model.model_fields.items():
        key = info.alias or name  # what a client sends
        paths += [(key, *rest) for rest in _ints_in(info.annotation)]
    return paths


def payload_with(path: FieldPath, value: int) -> Any:
    """A payload that has `value` at `path` (and nothing else)."""
    if not path:
        return value
    head, *rest = path
    inner = payload_with(tuple(rest), value)
    return [inner] if head == 0 else {head: inner}


def errors_at(model: type[BaseModel], path: FieldPath, value: int) -> list[dict[str, Any]]:
    """The schema's errors about the field at `path` when it holds `value`; the rest of the
    payload is missing, which pydantic reports at other places."""
    try:
        model.model_validate(payload_with(path, value))
    except ValidationError as exc:
        return [dict(e) for e in exc.errors() if tuple(e["loc"][: len(path)]) == path]
    return []


def _all_models() -> list[type[BaseModel]]:
    for info in pkgutil.walk_packages(signaling.__path__, "signaling."):
        if "migrations" not in info.name and not info.name.endswith("__main__"):
            importlib.import_module(info.name)

    def below(cls: type[BaseModel]) -> Iterator[type[BaseModel]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from below(sub)

    models = {
        cls
        for cls in below(BaseModel)
        if cls.__module__.startswith("signaling.") and not issubclass(cls, BaseSettings)
    }
    return sorted(models, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


for _name in FEATURE_MODULES:
    importlib.import_module(_name)
MODELS = _all_models()
EVENT_FIELDS = [
    (name, path)
    for name, spec in sorted(REGISTRY.events.items())
    for path in integer_paths(spec.schema)
]
MODEL_FIELDS = [(model, path) for model in MODELS for path in integer_paths(model)]


def _qualified(model: type[BaseModel]) -> str:
    return f"{model.__module__}.{model.__qualname__}"


def _label(path: FieldPath) -> str:
    return ".".join(str(p) for p in path)


# --- the schemas ------------------------------------------------------------------------------


def test_db_id_is_the_database_integer() -> None:
    ids = TypeAdapter(DbId)
    assert ids.validate_python(1) == 1 and ids.validate_python(DB_INT_MAX) == DB_INT_MAX
    for bad in (0, -1, DB_INT_MAX + 1, 2**40, 2**63):
        with pytest.raises(ValidationError):
            ids.validate_python(bad)
    assert DB_INT_MAX == 2**31 - 1  # PostgreSQL's INTEGER
    assert parse_db_id("42") == 42 and parse_db_id(str(DB_INT_MAX)) == DB_INT_MAX
    for text in ("", "0", "-1", "+1", " 1", "1_0", "²", "٣", "1.0", str(DB_INT_MAX + 1), "9" * 50):
        assert parse_db_id(text) is None, text


def test_the_walk_finds_integers_wherever_they_are() -> None:
    # The check below is only as good as this walk: nested models, optional, strict and
    # aliased fields, lists and dicts of ids.
    class Inner(EventModel):
        ids: list[DbId] = Field(default_factory=list)
        by_name: dict[str, DbId] = Field(default_factory=dict)

    class Outer(EventModel):
        inner: Inner | None = None
        since: int = Field(default=0, alias="from")
        flag: bool = False

    assert integer_paths(Outer) == [("inner", "ids", 0), ("inner", "by_name", "k"), ("from",)]
    assert errors_at(Outer, ("inner", "ids", 0), 2**40)
    assert errors_at(Outer, ("inner", "by_name", "k"), -1)
    assert not errors_at(Outer, ("from",), 2**40)  # a bare int: what the real check refuses
    events = {(name, _label(path)) for name, path in EVENT_FIELDS}
    assert {
        ("call:join", "call_id"),
        ("queue:list", "authority_id"),  # optional
        ("document_camera:view", "call_id"),  # strict
        ("selftest:report", "results.camera.ms"),  # nested
        ("documents:offer", "size"),
        ("appointment:book", "expert_id"),
    } <= events
    models = {(m.__qualname__, _label(p)) for m, p in MODEL_FIELDS}
    assert {("EndpointCreate", "office_id"), ("PublicBooking", "office_id")} <= models
    for model, path in NOT_STORED:
        assert (model, path) in {(_qualified(m), p) for m, p in MODEL_FIELDS}, "stale exemption"


@pytest.mark.parametrize(
    ("event", "path"), EVENT_FIELDS, ids=[f"{n}:{_label(p)}" for n, p in EVENT_FIELDS]
)
def test_every_integer_of_every_event_is_within_the_database(event: str, path: FieldPath) -> None:
    # What the dispatcher does with a ValidationError: the client gets `invalid`, no handler
    # runs (tests/signaling/test_dispatch.py).
    schema = REGISTRY.events[event].schema
    exempt = (_qualified(schema), path) in NOT_STORED
    for value in TOO_SMALL + (() if exempt else TOO_BIG):
        assert errors_at(schema, path, value), f"{event} takes {_label(path)}={value}"


@pytest.mark.parametrize(
    ("model", "path"), MODEL_FIELDS, ids=[f"{_qualified(m)}:{_label(p)}" for m, p in MODEL_FIELDS]
)
def test_every_integer_of_every_schema_is_within_the_database(
    model: type[BaseModel], path: FieldPath
) -> None:
    # The HTTP bodies too (admin, booking, office offer), which no registry lists.
    exempt = (_qualified(model), path) in NOT_STORED
    for value in TOO_SMALL + (() if exempt else TOO_BIG):
        assert errors_at(model, path, value), f"{_qualified(model)} takes {_label(path)}={value}"
    names = [p for p in path if isinstance(p, str) and p != "k"]
    if names and (names[-1] == "id" or names[-1].endswith(("_id", "_ids"))):
        # An id takes every id the database can hold: DbId, not a bound of its own.
        assert not errors_at(model, path, DB_INT_MAX), f"{_label(path)} is not a DbId"
        assert not errors_at(model, path, 1), f"{_label(path)} is not a DbId"


# --- over a real socket and HTTP, on SQLite and PostgreSQL -----------------------------------

HUGE = 2**40
DOCUMENT = {
    "recipients": ["p1"],
    "suite": 1,
    "ciphertext_bytes": 100,
    "sha256": "0" * 64,
    "size": 10,
    "type": "application/pdf",
}


async def _row_counts(live: LiveService) -> dict[str, int]:
    async with live.services.sessions() as session:
        return {
            table.name: (await session.scalar(select(func.count()).select_from(table))) or 0
            for table in Base.metadata.sorted_tables
        }


async def test_huge_ids_are_refused_and_change_nothing(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    async with make_live_service(tmp_path, database_url=database_url) as live:
        kiosk = await live.connect_kiosk()
        expert = await live.connect_user("kela")
        admin_token = await live.issue_token("admin")
        office = live.demo.office_id
        before = await _row_counts(live)

        for client, event, payload in (
            (kiosk, "call:join", {"call_id": HUGE}),
            (kiosk, "ticket:cancel", {"ticket_id": HUGE}),
            (expert, "queue:take", {"ticket_id": HUGE}),
            (expert, "queue:transfer", {"ticket_id": 1, "authority_id": DB_INT_MAX + 1}),
            (expert, "appointment:cancel", {"appointment_id": HUGE}),
            (expert, "appointment:list", {"office_id": HUGE}),
            (kiosk, "documents:offer", {"call_id": HUGE, **DOCUMENT}),
            (kiosk, "documents:offer", {"call_id": 1, **DOCUMENT, "size": HUGE}),
            (kiosk, "receipt:issue", {"call_id": HUGE}),
            (expert, "record:draft", {"call_id": HUGE, "service_type": "x", "outcome": "y"}),
        ):
            ack = await client.call(event, payload)
            assert ack["ok"] is False and ack["error"]["code"] == "invalid", (event, ack)
        # The largest id the database holds passes the schema and is simply not there.
        for client, event, payload in (
            (expert, "queue:take", {"ticket_id": DB_INT_MAX}),
            (expert, "appointment:cancel", {"appointment_id": DB_INT_MAX}),
            (kiosk, "call:join", {"call_id": DB_INT_MAX}),
        ):
            ack = await client.call(event, payload)
            assert ack["ok"] is False and ack["error"]["code"] == "not_found", (event, ack)
        # Ids written as text (an authority by id or code) that no row can have.
        as_text: list[tuple[str, dict[str, Any]]] = [
            ("availability:set", {"authority": "9" * 20, "weekly": []}),
            ("booking:slots", {"office_id": office, "authority": "9" * 20, "language": "fin"}),
        ]
        for event, payload in as_text:
            ack = await expert.call(event, payload)
            assert ack["ok"] is False and ack["error"]["code"] == "not_found", (event, ack)

        admin = {"Authorization": f"Bearer {admin_token}"}
        api = f"{live.base_url}/api"
        async with aiohttp.ClientSession() as http:
            for method, url, body, status in (
                ("POST", f"{api}/admin/offices/{HUGE}/disable", None, 404),
                ("POST", f"{api}/admin/endpoints/{HUGE}/credential", None, 404),
                ("POST", f"{api}/admin/users/²/enable", None, 404),
                ("GET", f"{api}/admin/offices/{HUGE}/offer", None, 404),
                ("PUT", f"{api}/admin/offices/{HUGE}/catalogue", {}, 404),
                ("PUT", f"{api}/admin/users/{HUGE}/municipality", {}, 404),
                ("PUT", f"{api}/booking/availability/{HUGE}/kela", {"weekly": []}, 404),
                ("PUT", f"{api}/booking/slot-lengths/{'9' * 20}", {"minutes": 30}, 404),
                ("POST", f"{api}/admin/endpoints", {"office_id": HUGE, "name": "x"}, 400),
                ("GET", f"{api}/admin/service-log?office_id={DB_INT_MAX + 1}", None, 400),
                ("GET", f"{api}/admin/service-log?authority_id=²", None, 400),
                ("GET", f"{api}/stats/hourly?office_id={DB_INT_MAX + 1}", None, 400),
                ("GET", f"{api}/booking/availability?user={HUGE}", None, 400),
                ("GET", f"{api}/public/booking/offer?office={HUGE}", None, 400),
                (
                    "GET",
                    f"{api}/public/booking/slots?office={office}&authority={'9' * 20}&language=fin",
                    None,
                    404,
                ),
            ):
                async with http.request(method, url, json=body, headers=admin) as response:
                    answer = await response.json()
                    assert response.status == status, (method, url, response.status, answer)
                    assert answer["ok"] is False, (method, url, answer)

        assert await _row_counts(live) == before
    faults = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not faults, faults
