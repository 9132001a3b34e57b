"""Who owns each Yjs client id of one canvas.

A Yjs client id is the author field of every struct and the key of a tab's presence. Anyone can
read the ids in a state vector, so an id proves nothing by itself: the server binds it. The first
session that introduces an id (structs in an update, or an awareness state) binds it to its
token's user, durably in the store, so the binding holds on every node and for a reconnecting
tab; from then on only that user may write structs or presence with that id. The server binds the
ids it writes with, so no client can speak as the server.

Bindings never change while the canvas exists, so the in-memory cache can only be incomplete,
never wrong: a miss asks the store, whose first-claim-wins answer settles races between nodes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from .session import Identity
from .store.base import SERVER_OWNER, ClientBinding, ClientIdRegistry

# Ids one session may introduce: a tab has one, and Yjs picks a new one only on a clash.
MAX_IDS_PER_SESSION = 16


class ClientIds:
    def __init__(self, canvas_id: str, store: ClientIdRegistry) -> None:
        self.canvas_id = canvas_id
        self.store = store
        self._owners: dict[int, ClientBinding] = {}

    async def load(self) -> None:
        self._owners = dict(await self.store.list_client_ids(self.canvas_id))

    def owner(self, client_id: int) -> ClientBinding | None:
        return self._owners.get(client_id)

    def owned_by(self, client_id: int, identity: Identity) -> bool | None:
        """True/False when the id is bound; None when nobody has claimed it yet."""
        binding = self._owners.get(client_id)
        if binding is None:
            return None
        return binding.user_id == identity.user_id

    def is_server(self, client_id: int) -> bool:
        binding = self._owners.get(client_id)
        return binding is not None and binding.user_id == SERVER_OWNER

    def learn(self, bindings: Iterable[ClientBinding]) -> None:
        for b in bindings:
            self._owners[b.client_id] = b

    async def claim(self, client_ids: Iterable[int], identity: Identity | None) -> set[int]:
        """Bind the ids not bound yet to ``identity`` (None: the server); return those refused
        because another owner holds them (here or, first, on another node)."""
        ids = list(client_ids)
        user = identity.user_id if identity is not None else SERVER_OWNER
        org = identity.org_id if identity is not None else ""
        wanted = [c for c in ids if c not in self._owners]
        if wanted:
            now = time.time()
            stored = await self.store.bind_client_ids(
                self.canvas_id, [ClientBinding(c, user, org, now) for c in wanted]
            )
            self._owners.update(stored)
        refused = set()
        for c in ids:
            binding = self._owners.get(c)
            if binding is None or binding.user_id != user:
                refused.add(c)
        return refused

    def __len__(self) -> int:
        return len(self._owners)
