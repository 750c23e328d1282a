"""Chat transcripts attached to service records (issue 18): what the record and its readers
see of one (its hash, size and message count), never its text.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from signaling.store.kiosk_health_models import ChatTranscript


def _transcript_view(row: ChatTranscript) -> dict[str, Any]:
    return {"sha256": row.sha256, "size": row.size, "messages": row.messages}

async def transcript_field(session: AsyncSession, call_id: int) -> dict[str, Any]:
    """`{"chat_transcript": {sha256, size, messages}}` for a call's record, when attached."""
    row = await session.get(ChatTranscript, call_id, populate_existing=True)
    return {"chat_transcript": _transcript_view(row)} if row is not None else {}
