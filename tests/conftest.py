"""Fixtures shared by every suite. Each lives in tests/support/ and is re-exported here."""

from tests.support.browser import browser
from tests.support.databases import *  # noqa: F403
from tests.support.service import *  # noqa: F403

__all__ = ["browser"]
