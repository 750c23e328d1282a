"""Fixtures of the resilience tests: network namespaces (tests/support/netns.py)."""

from tests.support.netns import netlab

__all__ = ["netlab"]
