"""The relay control wire format (media_relay/wire.py): valid frames, exact refusals, every
truncation, and arbitrary input (hypothesis) — a parser that only ever says WireError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_relay import wire

JOIN = {
    "id": 7,
    "op": "join",
    "args": {"room": "call-12", "participant": "user-3", "publish": ["audio", "camera"]},
}
OFFER_EVENT = {
    "event": "offer",
    "room": "call-12",
    "participant": "user-3",
    "offer": {"type": "offer", "sdp": "v=0\r\n", "tracks": [{"mid": "0", "kind": "audio"}]},
}


def refused(data: str | bytes) -> wire.WireError:
    with pytest.raises(wire.WireError) as caught:
        wire.parse_request(data)
    return caught.value


def test_every_op_parses_with_its_arguments() -> None:
    frames: dict[str, dict[str, Any]] = {
        "create_room": {"room": "call-1"},
        "close_room": {"room": "call-1"},
        "join": {"room": "call-1", "participant": "doccam-7", "publish": [], "subscribe": False},
        "answer": {"room": "call-1", "participant": "user-3", "sdp": "v=0\r\n"},
        "publish": {"room": "call-1", "participant": "user-3", "source": "document"},
        "unpublish": {"room": "call-1", "participant": "user-3", "source": "document"},
        "leave": {"room": "call-1", "participant": "user-3"},
        "claim": {"room": "call-1", "participant": "user-3"},
        "stats": {},
        "rooms": {},
        "drain": {"draining": True},
    }
    assert set(frames) == set(wire.OPS)
    for number, (op, args) in enumerate(frames.items(), start=1):
        request = wire.parse_request(json.dumps({"id": number, "op": op, "args": args}))
        assert (request.id, request.op) == (number, op)
        assert request.args.model_dump() == {**request.args.model_dump(), **args}
    join = wire.parse_request(json.dumps(JOIN))
    assert isinstance(join.args, wire.JoinArgs)
    assert join.args.publish == ["audio", "camera"] and join.args.subscribe is True
    # args may be left out for ops without any
    assert wire.parse_request('{"id": 1, "op": "stats"}').op == "stats"


def test_join_subscribes_to_all_nothing_or_some_sources() -> None:
    def subscribe(value: Any) -> Any:
        frame = {"id": 1, "op": "join", "args": {"room": "r", "participant": "p",
                                                  "subscribe": value}}
        args = wire.parse_request(json.dumps(frame)).args
        assert isinstance(args, wire.JoinArgs)
        return args.subscribe

    assert subscribe(True) is True and subscribe(False) is False
    assert subscribe(["document"]) == ["document"]
    assert subscribe([]) == []
    for bad in (["microphone"], "document", ["document"] * 9, 1, None, [True]):
        with pytest.raises(wire.WireError):
            subscribe(bad)


@pytest.mark.parametrize(
    ("frame", "code", "request_id", "words"),
    [
        ("not json", "bad_message", 0, "not JSON"),
        ("[1, 2]", "bad_message", 0, "a request is a JSON object"),
        ('{"op": "stats"}', "bad_message", 0, "id must be an integer"),
        ('{"id": true, "op": "stats"}', "bad_message", 0, "id must be an integer"),
        ('{"id": 0, "op": "stats"}', "bad_message", 0, "id must be an integer"),
        ('{"id": 9007199254740992, "op": "stats"}', "bad_message", 0, "id must be"),
        ('{"id": 3, "op": "stats", "x": 1}', "bad_message", 3, "unknown fields ['x']"),
        ('{"id": 4, "op": "explode"}', "unknown_op", 4, "unknown op 'explode'"),
        ('{"id": 4, "op": 12}', "unknown_op", 4, "unknown op 'int'"),
        ('{"id": 5, "op": "stats", "args": []}', "bad_args", 5, "args must be an object"),
        ('{"id": 6, "op": "stats", "args": {"a": 1}}', "bad_args", 6, "a: Extra inputs"),
        ('{"id": 8, "op": "create_room", "args": {}}', "bad_args", 8, "room: Field required"),
        ('{"id": 9, "op": "create_room", "args": {"room": "a b"}}', "bad_args", 9, "room:"),
        ('{"id": 9, "op": "create_room", "args": {"room": 5}}', "bad_args", 9, "room:"),
        ('{"id": 9, "op": "create_room", "args": {"room": ""}}', "bad_args", 9, "room:"),
        ('{"id": 10, "op": "drain", "args": {"draining": 1}}', "bad_args", 10, "draining:"),
        ('{"id": 10, "op": "drain", "args": {"draining": "yes"}}', "bad_args", 10, "draining"),
    ],
)
def test_bad_requests_are_refused_with_their_id(
    frame: str, code: str, request_id: int, words: str
) -> None:
    error = refused(frame)
    assert (error.code, error.request_id) == (code, request_id)
    assert words in error.message


def test_sources_and_codes_as_the_relay_gives_them() -> None:
    from media_relay.room import SOURCES

    assert wire.SOURCES == SOURCES
    join = {"room": "r", "participant": "p", "publish": ["audio", "smell"]}
    error = refused(json.dumps({"id": 3, "op": "join", "args": join}))
    assert (error.code, error.request_id) == ("bad_source", 3)
    publish = {"room": "r", "participant": "p", "source": "smell"}
    assert refused(json.dumps({"id": 4, "op": "publish", "args": publish})).code == "bad_source"
    leave = {"room": "r", "participant": "p q"}
    assert refused(json.dumps({"id": 5, "op": "leave", "args": leave})).code == "bad_participant"
    both = {"room": "r r", "participant": "p q"}
    assert refused(json.dumps({"id": 6, "op": "leave", "args": both})).code == "bad_args"


def test_limits() -> None:
    too_long_id = {"id": 1, "op": "create_room", "args": {"room": "r" * 129}}
    assert refused(json.dumps(too_long_id)).code == "bad_args"
    assert wire.parse_request(json.dumps({**too_long_id, "args": {"room": "r" * 128}}))
    sources = {"room": "r", "participant": "p", "publish": ["audio"] * 9}
    assert refused(json.dumps({"id": 2, "op": "join", "args": sources})).code == "bad_source"
    huge = json.dumps(
        {"id": 3, "op": "answer", "args": {"room": "r", "participant": "p", "sdp": "x" * 300_000}}
    )
    error = refused(huge)
    assert (error.code, error.request_id) == ("bad_message", 0)
    # counted in bytes, not characters
    wide = json.dumps({"id": 4, "op": "stats", "pad": "ä" * 140_000}, ensure_ascii=False)
    assert len(wide) < wire.MAX_REQUEST_BYTES < len(wide.encode())
    assert "larger than" in refused(wide).message
    with pytest.raises(wire.WireError):
        wire.encode_request(5, "answer", {"room": "r", "participant": "p", "sdp": "x" * 300_000})


def test_every_truncation_of_a_request_is_refused() -> None:
    data = json.dumps(JOIN)
    for end in range(len(data)):
        error = refused(data[:end])
        assert error.code == "bad_message"
        assert error.request_id == 0
    for end in range(len(data.encode())):
        refused(data.encode()[:end])
    assert wire.parse_request(data).id == 7


def test_requests_round_trip() -> None:
    data = wire.encode_request(11, "join", {"room": "call-1", "participant": "user-3"})
    request = wire.parse_request(data)
    assert request.op == "join" and request.id == 11
    assert request.args.model_dump() == {
        "room": "call-1",
        "participant": "user-3",
        "publish": [],
        "subscribe": True,
    }
    with pytest.raises(wire.WireError) as caught:
        wire.encode_request(12, "join", {"room": "call 1", "participant": "user-3"})
    assert caught.value.code == "bad_args"


def test_node_messages_round_trip() -> None:
    offer = OFFER_EVENT["offer"]
    event = wire.parse_node_message(
        wire.encode_event("offer", "call-12", "user-3", offer=offer)  # type: ignore[arg-type]
    )
    assert isinstance(event, wire.Event)
    assert event.offer is not None and event.offer.model_dump() == offer  # tracks pass through
    gone = wire.parse_node_message(wire.encode_event("gone", "r", "p", reason="ice_failed"))
    assert isinstance(gone, wire.Event) and gone.reason == "ice_failed"
    reply = wire.parse_node_message(wire.encode_reply(4, {"offer": offer}))
    assert isinstance(reply, wire.Reply) and reply.ok and reply.result == {"offer": offer}
    error = wire.parse_node_message(wire.encode_error(5, "unknown_room", "no room 'x'"))
    assert isinstance(error, wire.Reply) and not error.ok
    assert error.error is not None and error.error.code == "unknown_room"


@pytest.mark.parametrize(
    "frame",
    [
        '{"event": "offer", "room": "r", "participant": "p"}',  # an offer without its offer
        '{"event": "gone", "room": "r", "participant": "p"}',  # gone without a reason
        '{"event": "joined", "room": "r", "participant": "p"}',
        '{"id": 1, "ok": false}',
        '{"id": "1", "ok": true}',
        "[]",
        "{",
    ],
)
def test_bad_node_messages_are_refused(frame: str) -> None:
    with pytest.raises(wire.WireError):
        wire.parse_node_message(frame)


def test_every_truncation_of_an_event_is_refused() -> None:
    data = json.dumps(OFFER_EVENT)
    for end in range(len(data)):
        with pytest.raises(wire.WireError):
            wire.parse_node_message(data[:end])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def mutated_requests() -> st.SearchStrategy[dict[str, Any]]:
    """Valid-looking requests with one part replaced by anything."""
    return st.builds(
        lambda op, field, value, keep_id: {
            "id": 1 if keep_id else value,
            "op": op,
            "args": {**JOIN["args"], field: value},  # type: ignore[dict-item]
        },
        st.sampled_from(sorted(wire.OPS)),
        st.sampled_from(["room", "participant", "publish", "subscribe", "sdp", "source", "x"]),
        json_values,
        st.booleans(),
    )


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_arbitrary_input_only_ever_raises_wire_error(data: str | bytes) -> None:
    try:
        wire.parse_request(data)
    except wire.WireError as exc:
        assert exc.code in ("bad_message", "unknown_op", "bad_args")


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, mutated_requests()))
def test_arbitrary_json_only_ever_raises_wire_error(value: Any) -> None:
    data = json.dumps(value)
    try:
        request = wire.parse_request(data)
    except wire.WireError as exc:
        if isinstance(value, dict) and isinstance(value.get("id"), int):
            if not isinstance(value["id"], bool) and 0 < value["id"] <= wire.MAX_REQUEST_ID:
                assert exc.request_id == value["id"]
        return
    assert request.op in wire.OPS
    assert isinstance(value, dict) and request.id == value["id"]
