"""The relay's per-packet work: the C module when it is built, its Python twin otherwise.

`pip install -e .` compiles `media_relay/_fastpath.c` (setup.py); when no compiler was there,
or ETAPALVELU_RELAY_PURE_PYTHON=1 is set, `media_relay/fastpath_py.py` does the same work in
Python (slower, same bytes on the wire). `NATIVE` says which one runs; `etapalvelu bench relay`
prints it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

PURE_PYTHON_ENV = "ETAPALVELU_RELAY_PURE_PYTHON"
# what _fastpath.c casts libsrtp's entry points to (libsrtp 2; libsrtp 3 changed them)
SRTP_SIGNATURE = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"

if TYPE_CHECKING:
    from media_relay.fastpath_py import Link, Output, Receiver, Route, fanout, parse, unprotect

    NATIVE: bool
else:
    try:
        if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
            raise ImportError(f"{PURE_PYTHON_ENV} is set")
        for _name in ("srtp_protect", "srtp_unprotect", "srtp_protect_rtcp"):
            if _srtp_ffi.typeof(getattr(_srtp_lib, _name)).cname != SRTP_SIGNATURE:
                raise ImportError(f"pylibsrtp's {_name} is not libsrtp 2's")
        from media_relay._fastpath import (
            Link,
            Output,
            Receiver,
            Route,
            fanout,
            parse,
            set_srtp,
            unprotect,
        )

        set_srtp(
            int(_srtp_ffi.cast("uintptr_t", _srtp_ffi.addressof(_srtp_lib, "srtp_protect"))),
            int(_srtp_ffi.cast("uintptr_t", _srtp_ffi.addressof(_srtp_lib, "srtp_unprotect"))),
            int(_srtp_ffi.cast("uintptr_t", _srtp_ffi.addressof(_srtp_lib, "srtp_protect_rtcp"))),
        )
        NATIVE = True
    except ImportError:
        from media_relay.fastpath_py import (
            Link,
            Output,
            Receiver,
            Route,
            fanout,
            parse,
            unprotect,
        )

        NATIVE = False


def srtp_context(session: Any) -> int:
    """The srtp_t of a pylibsrtp Session, as an address (0 when there is none)."""
    if session is None:
        return 0
    return int(_srtp_ffi.cast("uintptr_t", session._srtp[0]))


__all__ = [
    "NATIVE",
    "PURE_PYTHON_ENV",
    "Link",
    "Output",
    "Receiver",
    "Route",
    "fanout",
    "parse",
    "srtp_context",
    "unprotect",
]
