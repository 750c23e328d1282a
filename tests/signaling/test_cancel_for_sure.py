"""`relay_placement.cancel_for_sure`: stopping the relay router must end its registry refresher
even when a cancellation was swallowed (asyncio.wait_for on Python 3.11 can lose one that
arrives as its own timeout fires; the full suite once hung 180 s in a test's teardown so)."""

from __future__ import annotations

import asyncio

from signaling.transport.relay_placement import cancel_for_sure


async def test_a_task_that_swallows_a_cancel_is_cancelled_again() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 1:
                    raise
                # the first one is lost, as in wait_for's race

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await cancel_for_sure(task)
    assert task.cancelled() and swallowed == 2


async def test_a_task_that_has_ended_is_left_alone() -> None:
    async def quick() -> int:
        return 7

    task = asyncio.create_task(quick())
    await task
    await cancel_for_sure(task)
    assert task.result() == 7
