"""No plaintext manage token waits in the booking outbox (issue 17).

Until now a queued confirmation kept the booking's own `/booking/<token>` token in
`booking_messages.link_token` until it was sent. Now every message's token is made when it is
sent and only its SHA-256 kept (signaling/booking/booking_links.py), so this erases the tokens
still waiting. A confirmation still pending then goes out with a fresh token of its own, which
opens the same booking; the erased token keeps working where it was already shown (the booking
page), since the appointment keeps its hash.

The column stays, always empty, so that a process of the previous release still running during
a rolling upgrade can queue its messages (the new release erases what such a process writes
when the message is sent); a later migration drops it.

Revision ID: 0019_outbox_tokens
Revises: 0018_join_check
"""

from __future__ import annotations

from alembic import op

revision: str = "0019_outbox_tokens"
down_revision: str | None = "0018_join_check"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE booking_messages SET link_token = NULL WHERE link_token IS NOT NULL")


def downgrade() -> None:
    # Nothing to restore: the erased tokens are gone for good, and the previous release makes a
    # fresh token for a confirmation whose row has none.
    pass
