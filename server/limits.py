"""Token buckets for abuse limits: per connection (messages and bytes) and per address.

A bucket refills continuously at ``rate`` per second up to ``rate * burst_s``; checking costs two
float operations, so it is cheap enough for every frame on the hot path.
"""

from __future__ import annotations

import time


class TokenBucket:
    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, burst_s: float) -> None:
        self.rate = rate
        self.capacity = max(rate * burst_s, 1.0)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self, amount: float = 1.0, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < amount:
            return False
        self.tokens -= amount
        return True


class ConnectionLimiter:
    """Messages/s and bytes/s of one connection, plus the shared bucket of its address."""

    __slots__ = ("messages", "bytes", "address")

    def __init__(
        self, messages_per_s: float, bytes_per_s: float, burst_s: float, address: TokenBucket | None
    ) -> None:
        self.messages = TokenBucket(messages_per_s, burst_s)
        self.bytes = TokenBucket(bytes_per_s, burst_s)
        self.address = address

    def allow(self, size: int) -> bool:
        now = time.monotonic()
        if not self.messages.take(1.0, now) or not self.bytes.take(size, now):
            return False
        return self.address is None or self.address.take(1.0, now)


class AddressBuckets:
    """One bucket per client address, forgotten when full again (so memory stays bounded)."""

    def __init__(self, rate: float, burst_s: float, max_addresses: int = 100_000) -> None:
        self.rate = rate
        self.burst_s = burst_s
        self.max_addresses = max_addresses
        self._buckets: dict[str, TokenBucket] = {}

    def get(self, address: str) -> TokenBucket:
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self.max_addresses:
                self._prune()
            bucket = self._buckets[address] = TokenBucket(self.rate, self.burst_s)
        return bucket

    def _prune(self) -> None:
        now = time.monotonic()
        for key, b in list(self._buckets.items()):
            if b.tokens + (now - b.stamp) * b.rate >= b.capacity:
                del self._buckets[key]
