"""Supervision of one long-lived Redis connection: connect, serve, notice loss, back off, retry.

Every broker connection that must outlive a Redis outage runs in this loop: the single Redis
subscriber (``redis.py``) and, for a Redis Cluster (``cluster.py``), each primary's subscriber and
each primary's publishing lane. The loop owns no socket and knows no command; the connection's
owner hands it the steps. Keeping the loop in one place keeps the brokers' failure behaviour the
same: an error that means "the connection is gone" is reported once per loss, anything else is
logged as a bug, the reconnect waits a capped, jittered exponential backoff (so a fleet of nodes
does not reconnect in lockstep) and a successful connect resets it.

:func:`read_until_silent` is the other half every subscriber shares: a blocking read that treats
silence longer than ``limit`` (not even the answer to our own heartbeat or PING) as a dead
connection, which is how a half-open socket, a SIGSTOPped server or a TCP black hole is noticed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

# Errors that mean "the connection is gone", as opposed to bugs.
CONN_ERRORS = (RedisError, OSError, asyncio.TimeoutError)

FIRST_BACKOFF_S = 0.05


class Backoff:
    """Capped exponential backoff with jitter: a fleet of nodes must not retry in lockstep."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.delay = FIRST_BACKOFF_S

    def reset(self) -> None:
        self.delay = FIRST_BACKOFF_S

    async def wait(self) -> None:
        await asyncio.sleep(self.delay * random.uniform(0.5, 1.0))
        self.delay = min(self.delay * 2, self.cap)


@dataclass(slots=True)
class Supervised:
    """The steps of one supervised connection.

    ``connect`` establishes it (and subscribes, if it is a subscriber); ``serve`` uses it until it
    breaks (raising) or has nothing left to do (returning); ``lost`` is told of every failed round
    (the owner marks a gap, drops what cannot be sent); ``drop`` closes what is left of the
    connection. ``idle``, checked before each round, may retire the connection (True ends the
    loop); ``retry`` runs after the backoff, before the next connect (a topology refresh).
    """

    name: str
    connect: Callable[[], Awaitable[None]]
    serve: Callable[[], Awaitable[None]]
    lost: Callable[[BaseException], None]
    drop: Callable[[], Awaitable[None]]
    closing: Callable[[], bool]
    max_backoff: float
    log: logging.Logger
    idle: Callable[[], Awaitable[bool]] | None = None
    retry: Callable[[], Awaitable[None]] | None = None


async def supervise(conn: Supervised) -> None:
    """Run ``conn`` until its owner closes (or ``idle`` retires it)."""
    backoff = Backoff(conn.max_backoff)
    while not conn.closing():
        if conn.idle is not None and await conn.idle():
            return
        try:
            await conn.connect()
            backoff.reset()
            await conn.serve()
        except Exception as exc:
            if conn.closing():
                return
            if not isinstance(exc, CONN_ERRORS):
                conn.log.exception("%s failed; reconnecting", conn.name)
            conn.lost(exc)
            await conn.drop()
            await backoff.wait()
            if conn.retry is not None:
                await conn.retry()


async def read_until_silent(
    parse: Callable[[], Awaitable[Any]],
    dispatch: Callable[[list[bytes]], None],
    limit: float,
    keep_reading: Callable[[], bool] = lambda: True,
) -> None:
    """Read pub/sub replies and dispatch them until ``keep_reading`` says stop; raise
    ``ConnectionError`` when nothing at all arrived for ``limit`` seconds.

    The owner makes sure something arrives in time when the connection is healthy (our own
    heartbeat on the channel, or a PING answered on the subscriber connection).
    """
    loop = asyncio.get_running_loop()
    rearm_every = limit / 4  # re-arming a timer per message would cost more than the read
    rearm_at = 0.0
    try:
        async with asyncio.timeout(None) as guard:
            while keep_reading():
                now = loop.time()
                if now >= rearm_at:
                    guard.reschedule(now + limit)
                    rearm_at = now + rearm_every
                message = await parse()
                if isinstance(message, list) and len(message) >= 2:
                    dispatch(message)
    except TimeoutError:
        raise ConnectionError(f"nothing heard for {limit:.1f}s, not even our own ping") from None
