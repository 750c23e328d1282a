"""Names of the socket.io rooms that every connected socket is put in at connect.

Features emit to these instead of tracking sockets themselves, e.g.
`await services.sio.emit("queue:changed", data, room=rooms.office(7))`. With Redis configured,
emits to a room reach the sockets of every signaling process.

| room | members |
|---|---|
| `user:<id>` | every socket of that person |
| `endpoint:<id>` | every socket of that kiosk |
| `office:<id>` | the office's kiosks and its clerks |
| `authority:<id>` | experts serving that authority |
| `role:<role>` | every socket of that role (expert, interpreter, clerk, admin, endpoint) |
| `language:<code>` | interpreters (and experts) working in that ISO 639-3 language |
| `presence` | experts, interpreters, admins after `presence:get`: every `presence:changed` |
| `presence:clerks`, `presence:office:<id>` | clerks after `presence:get`: people, own kiosks |
"""

from __future__ import annotations

from signaling.directory.principals import Principal, Role

PRESENCE = "presence"
# Clerks see people's presence but only their own office's kiosks.
PRESENCE_CLERKS = "presence:clerks"


def presence_office(office_id: int) -> str:
    return f"presence:office:{office_id}"


def user(user_id: int) -> str:
    return f"user:{user_id}"


def endpoint(endpoint_id: int) -> str:
    return f"endpoint:{endpoint_id}"


def guest(guest_id: int) -> str:
    """The customer at home (signaling/flow/remote_customer.py): not a user, ids of their own."""
    return f"guest:{guest_id}"


def office(office_id: int) -> str:
    return f"office:{office_id}"


def authority(authority_id: int) -> str:
    return f"authority:{authority_id}"


def role(value: Role | str) -> str:
    return f"role:{value}"


def language(code: str) -> str:
    return f"language:{code}"


def principal_room(principal: Principal) -> str:
    """The room holding every socket of this person or kiosk."""
    if principal.kind == "endpoint":
        return endpoint(principal.id)
    if principal.kind == "guest":
        return guest(principal.id)
    return user(principal.id)


def rooms_for(principal: Principal) -> list[str]:
    """The rooms a socket of `principal` joins at connect."""
    result = [principal_room(principal), role(principal.role)]
    if principal.office_id is not None and principal.role in (Role.ENDPOINT, Role.CLERK):
        result.append(office(principal.office_id))
    if principal.role == Role.EXPERT:
        result.extend(authority(a) for a in sorted(principal.authority_ids))
    if principal.role in (Role.EXPERT, Role.INTERPRETER):
        result.extend(language(code) for code in sorted(principal.languages))
    return result
