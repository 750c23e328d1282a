"""Fixtures that run the whole service (signaling + in-process relay) on loopback.

Owned by the signaling foundation work; filled in there.
"""
