"""The rooms of one node: each canvas loaded once, unloaded when idle.

Fifty clients connecting to a cold canvas at the same instant share one load (single flight).
A room with no sessions and no other holders is unloaded after ``idle_seconds``; a canvas that is
being unloaded is not loaded again until the unload has finished, so its broker subscription and
its final compaction never race a fresh copy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from . import closecodes, control
from .broker.base import KIND_CONTROL, Broker
from .room import Room, UpdateGate, spawn
from .store.base import CanvasNotFound, RoomStore

log = logging.getLogger("cocanvas.rooms")


class Rooms:
    def __init__(
        self,
        store: RoomStore,
        broker: Broker,
        *,
        idle_seconds: float = 30.0,
        gate_factory: Callable[[str], UpdateGate] | None = None,
        room_options: dict[str, float | int] | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.idle_seconds = idle_seconds
        self._gate_factory = gate_factory
        self._room_options = room_options or {}
        self._rooms: dict[str, Room] = {}
        self._holders: dict[str, int] = {}
        self._loading: dict[str, asyncio.Future[Room]] = {}
        self._unloading: dict[str, asyncio.Future[None]] = {}
        self._idle_timers: dict[str, asyncio.TimerHandle] = {}
        self.loads = 0  # how many times a room was actually loaded from the store

    def __len__(self) -> int:
        return len(self._rooms)

    def get_loaded(self, canvas_id: str) -> Room | None:
        return self._rooms.get(canvas_id)

    async def acquire(self, canvas_id: str) -> Room:
        """The loaded room for a canvas; raises CanvasNotFound. Pair with :meth:`release`."""
        while True:
            unloading = self._unloading.get(canvas_id)
            if unloading is not None:
                await asyncio.shield(unloading)
                continue
            room = self._rooms.get(canvas_id)
            if room is not None and not room.closed:
                self._hold(canvas_id)
                return room
            pending = self._loading.get(canvas_id)
            if pending is not None:
                await asyncio.shield(pending)
                continue
            await self._load(canvas_id)

    async def _load(self, canvas_id: str) -> None:
        future: asyncio.Future[Room] = asyncio.get_running_loop().create_future()
        self._loading[canvas_id] = future
        try:
            gate = self._gate_factory(canvas_id) if self._gate_factory else None
            room = Room(
                canvas_id,
                self.store,
                self.broker,
                gate,
                on_empty=self._on_room_empty,
                on_evict=self._evict_room,
                **self._room_options,  # type: ignore[arg-type]
            )
            await room.load()
            self._rooms[canvas_id] = room
            self.loads += 1
            future.set_result(room)
        except BaseException as exc:
            future.set_exception(exc)
            # Consume it here too, so a load nobody else waited for does not log "never retrieved".
            future.exception()
            raise
        finally:
            del self._loading[canvas_id]

    def _evict_room(self, room: Room, code: int, reason: str) -> None:
        self._start_unload(room, code, reason, force=True)

    def _hold(self, canvas_id: str) -> None:
        self._holders[canvas_id] = self._holders.get(canvas_id, 0) + 1
        timer = self._idle_timers.pop(canvas_id, None)
        if timer is not None:
            timer.cancel()

    def release(self, room: Room) -> None:
        canvas_id = room.canvas_id
        left = self._holders.get(canvas_id, 0) - 1
        if left > 0:
            self._holders[canvas_id] = left
            return
        self._holders.pop(canvas_id, None)
        self._arm_idle(room)

    def _on_room_empty(self, room: Room) -> None:
        if self._holders.get(room.canvas_id, 0) == 0:
            self._arm_idle(room)

    def _arm_idle(self, room: Room) -> None:
        if room.sessions or room.closed or self._rooms.get(room.canvas_id) is not room:
            return
        old = self._idle_timers.pop(room.canvas_id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        if self.idle_seconds <= 0:
            self._start_unload(room)
        else:
            self._idle_timers[room.canvas_id] = loop.call_later(
                self.idle_seconds, self._start_unload, room
            )

    def _start_unload(
        self,
        room: Room,
        code: int = closecodes.SERVICE_RESTART,
        reason: str = "",
        force: bool = False,
    ) -> None:
        canvas_id = room.canvas_id
        self._idle_timers.pop(canvas_id, None)
        if self._rooms.get(canvas_id) is not room:
            return
        if not force and (room.sessions or self._holders.get(canvas_id)):
            return
        del self._rooms[canvas_id]
        self._holders.pop(canvas_id, None)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._unloading[canvas_id] = done

        async def unload() -> None:
            try:
                await room.close(code, reason)
            except Exception:
                log.exception("unloading %s failed", canvas_id)
            finally:
                del self._unloading[canvas_id]
                done.set_result(None)

        spawn(unload())

    async def evict(self, canvas_id: str, code: int, reason: str) -> None:
        """Close every session of a canvas and unload it now (canvas deleted, store failure)."""
        room = self._rooms.get(canvas_id)
        if room is not None:
            self._start_unload(room, code, reason, force=True)
        unloading = self._unloading.get(canvas_id)
        if unloading is not None:
            await asyncio.shield(unloading)

    async def delete_canvas(self, canvas_id: str) -> None:
        """The canvas was deleted from the store: tell every node, and unload it here.

        Published whether or not the canvas is loaded on this node: another node may hold it.
        """
        self.broker.publish(canvas_id, KIND_CONTROL, control.encode(control.CanvasDeleted()))
        await self.evict(canvas_id, closecodes.NOT_FOUND, "canvas was deleted")

    def revoke_invite(self, canvas_id: str, invite_id: str) -> int:
        """The invite was revoked in the store: close its sockets here and on every node."""
        self.broker.publish(
            canvas_id, KIND_CONTROL, control.encode(control.InviteRevoked(invite_id))
        )
        room = self._rooms.get(canvas_id)
        return room.close_sessions_of_invite(invite_id) if room is not None else 0

    def close_participant(self, canvas_id: str, message: control.Control, code: int) -> int:
        """A participant was removed or given another role: close their sockets here and on
        every node (``message`` is ParticipantRemoved or RoleChanged)."""
        assert isinstance(message, (control.ParticipantRemoved, control.RoleChanged))
        self.broker.publish(canvas_id, KIND_CONTROL, control.encode(message))
        room = self._rooms.get(canvas_id)
        reason = "removed" if isinstance(message, control.ParticipantRemoved) else "role changed"
        return room.close_sessions_of_user(message.user_id, code, reason) if room else 0

    async def close_all(
        self, code: int = closecodes.SERVICE_RESTART, reason: str = "server restarting"
    ) -> None:
        for timer in self._idle_timers.values():
            timer.cancel()
        self._idle_timers.clear()
        for room in list(self._rooms.values()):
            self._start_unload(room, code, reason, force=True)
        while self._unloading:
            await asyncio.gather(*(asyncio.shield(f) for f in list(self._unloading.values())))


__all__ = ["CanvasNotFound", "Rooms"]
