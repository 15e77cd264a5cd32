"""Pieces of the Faust app that need no broker."""

from __future__ import annotations

import asyncio

import pytest

from streams.app import StateTable


def test_a_window_is_acknowledged_only_after_its_changelog_records_are_delivered() -> None:
    async def body() -> None:
        table = object.__new__(StateTable)  # the waiting logic only; no app, no broker
        table.in_flight = []
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        table.in_flight += [first, second]
        waiter = asyncio.ensure_future(table.delivered())
        first.set_result(None)
        await asyncio.sleep(0.01)
        assert not waiter.done()  # one record still in flight
        second.set_result(None)
        await asyncio.wait_for(waiter, 1)
        assert table.in_flight == []

    asyncio.run(body())


def test_a_failed_changelog_delivery_is_not_swallowed() -> None:
    async def body() -> None:
        table = object.__new__(StateTable)
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(ConnectionError("broker gone"))
        table.in_flight = [failed]
        with pytest.raises(ConnectionError):
            await table.delivered()

    asyncio.run(body())
