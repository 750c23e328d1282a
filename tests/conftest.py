"""Fixtures shared by every suite. Each lives in tests/support/ and is re-exported here."""

from hypothesis import HealthCheck, settings

from tests.support.browser import browser
from tests.support.databases import *  # noqa: F403
from tests.support.service import *  # noqa: F403

__all__ = ["browser"]

# On a shared 2-core machine (and right after boot, with cold imports) input generation can be
# slow for reasons that say nothing about the code under test: hypothesis's speed checks and
# per-example deadline would fail a correct property. What a property asserts is unchanged.
settings.register_profile(
    "shared-machine",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("shared-machine")
