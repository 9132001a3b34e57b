"""Hostile frames for scripts/bench-hostile.sh (issue 8): a viewer sends the largest frames the
limits allow, over and over, reconnecting when closed.

  setup URL                                   create a partner canvas with one organization and
                                              redeem a viewer invite; prints: canvas facilitator_token viewer_token
  attack WS_URL TOKEN a|b|c [--seconds S]     flood: frames back to back, reconnect when closed
  attack WS_URL TOKEN a|b|c --frames N        paced: one frame per fresh connection, then a sync step 1
                                              probe; the time to its answer (or to the close) is what
                                              the server spent on the frame (server otherwise idle)
  table JSONL...                              one line per result (latency p50/p95/p99/max · server CPU)
  profile FOLDED                              share of the server's samples in validation (py-spy raw)

Frames (all sent as y-websocket sync updates):
  a  4,900 new note Maps (type Map under root ``notes``) in one update: valid, under the bounds
     (5,000 keys); a viewer may not add notes, so the policy deletes them again (compensation)
  b  150,000 new note Maps (2.4 MB): over the bounds
  c  a 6.9 MB delete set over clocks of a client that does not exist (1.6 M ranges)

The attacker connects from 127.0.0.2 so that its per-address buckets are not the honest clients'.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _post(url: str, body: dict, token: str | None = None) -> dict:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def setup(base: str) -> None:
    c = _post(
        f"{base}/api/canvases",
        {"title": "hostile", "template": "partner-co-creation", "orgs": [{"name": "A"}]},
    )
    orgs = c.get("orgs") or []
    if isinstance(orgs, dict):
        org_id = next(iter(orgs))
    else:
        org_id = orgs[0]["id"]
    inv = _post(
        f"{base}/api/canvases/{c['id']}/invites",
        {"org_id": org_id, "role": "viewer", "expires_in_s": 3600},
        c["facilitator_token"],
    )
    red = _post(f"{base}/api/invites/{inv['id']}/redeem", {"name": "v"})
    print(c["id"], c["facilitator_token"], red["token"])


# -- frames ---------------------------------------------------------------------------------------


def _varuint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varstring(s: str) -> bytes:
    raw = s.encode()
    return _varuint(len(raw)) + raw


# info: ContentType (7) | has parentSub (0x20); parent given by root name; type ref 1 = YMap
_MAP_PREFIX = bytes((7 | 0x20,)) + _varuint(1) + _varstring("notes")
_YMAP = _varuint(1)


def maps_update(client: int, clock: int, n: int) -> bytes:
    """n new Maps at notes/x<clock>, clocks clock..clock+n-1 of ``client``: what Yjs encodes for
    ``notes.set(key, new Y.Map())`` of fresh keys in one transaction."""
    body = b"".join(_MAP_PREFIX + _varstring(f"x{c}") + _YMAP for c in range(clock, clock + n))
    return _varuint(1) + _varuint(n) + _varuint(client) + _varuint(clock) + body + _varuint(0)


def deletes_update(target_bytes: int) -> bytes:
    """A delete-only update of ~target_bytes: ranges (2i, 1) of a client nobody has."""
    ghost = 987_654_321
    n = target_bytes // 4
    ranges = b"".join(_varuint(2 * i) + b"\x01" for i in range(n))
    return _varuint(0) + _varuint(1) + _varuint(ghost) + _varuint(n) + ranges


def sync_update(update: bytes) -> bytes:
    return bytes((0, 2)) + _varuint(len(update)) + update


def sync_step1(sv: bytes) -> bytes:
    return bytes((0, 0)) + _varuint(len(sv)) + sv


def _read_varuint(b: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        x = b[pos]
        pos += 1
        n |= (x & 0x7F) << shift
        shift += 7
        if x < 0x80:
            return n, pos


def _sync_kind(msg: bytes) -> tuple[int, bytes] | None:
    if len(msg) < 2 or msg[0] != 0:
        return None
    length, pos = _read_varuint(msg, 2)
    return msg[1], msg[pos : pos + length]


def _decode_sv(sv: bytes) -> dict[int, int]:
    n, pos = _read_varuint(sv, 0)
    out = {}
    for _ in range(n):
        c, pos = _read_varuint(sv, pos)
        k, pos = _read_varuint(sv, pos)
        out[c] = k
    return out


# -- attack ---------------------------------------------------------------------------------------


class Attacker:
    def __init__(self, url: str, token: str, kind: str) -> None:
        self.url = f"{url}?token={token}"
        self.kind = kind
        self.client = random.randrange(1 << 20, 1 << 31)
        self.clock = 0
        self.closes: dict[str, int] = {}
        self.frames = 0
        self.bytes = 0
        self.connections = 0
        self.connect_errors = 0
        if kind == "b":
            self.fixed = sync_update(maps_update(self.client, 0, 150_000))
        elif kind == "c":
            self.fixed = sync_update(deletes_update(6_380_000))
        else:
            self.fixed = b""

    def frame(self) -> bytes:
        if self.kind == "a":
            f = sync_update(maps_update(self.client, self.clock, 4_900))
            self.clock += 4_900
            return f
        return self.fixed

    async def connect(self):  # type: ignore[no-untyped-def]
        from websockets.asyncio.client import connect

        ws = await connect(
            self.url,
            max_size=None,
            compression=None,
            local_addr=("127.0.0.2", 0),
            open_timeout=10,
            ping_interval=None,
            max_queue=None,
        )
        self.connections += 1
        # the server's sync step 1 carries its state vector: our clock continues from there
        while True:
            msg = await asyncio.wait_for(ws.recv(), 10)
            sk = _sync_kind(msg) if isinstance(msg, bytes) else None
            if sk is not None and sk[0] == 0:
                self.sv = sk[1]
                self.clock = _decode_sv(sk[1]).get(self.client, 0)
                return ws

    def _closed(self, ws) -> None:  # type: ignore[no-untyped-def]
        code = str(ws.close_code) if ws.close_code is not None else "none"
        self.closes[code] = self.closes.get(code, 0) + 1

    async def flood(self, seconds: float) -> dict:
        from websockets.exceptions import ConnectionClosed

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                ws = await self.connect()
            except Exception:
                self.connect_errors += 1
                await asyncio.sleep(0.05)
                continue

            async def drain(ws=ws) -> None:  # type: ignore[no-untyped-def]
                try:
                    async for _ in ws:
                        pass
                except Exception:
                    pass

            reader = asyncio.create_task(drain())
            try:
                while time.monotonic() < deadline:
                    f = self.frame()
                    await ws.send(f)
                    self.frames += 1
                    self.bytes += len(f)
            except ConnectionClosed:
                pass
            finally:
                if time.monotonic() >= deadline:
                    await ws.close()
                await reader
                self._closed(ws)
        return {"mode": "flood", "seconds": seconds}

    async def paced(self, frames: int, gap: float) -> dict:
        from websockets.exceptions import ConnectionClosed

        times = []
        for _ in range(frames):
            ws = await self.connect()
            await asyncio.sleep(0.2)  # let the join's messages arrive
            f = self.frame()
            t0 = time.perf_counter()
            await ws.send(f)
            await ws.send(sync_step1(self.sv))
            self.frames += 1
            self.bytes += len(f)
            try:
                while True:
                    msg = await asyncio.wait_for(ws.recv(), 30)
                    sk = _sync_kind(msg) if isinstance(msg, bytes) else None
                    if sk is not None and sk[0] == 1:
                        break
            except ConnectionClosed:
                pass
            times.append((time.perf_counter() - t0) * 1000)
            await ws.close()
            self._closed(ws)
            await asyncio.sleep(gap)
        times.sort()
        return {
            "mode": "paced",
            "frame_ms": {
                "p50": round(times[len(times) // 2], 2),
                "min": round(times[0], 2),
                "max": round(times[-1], 2),
                "all": [round(t, 1) for t in times],
            },
        }


def attack(args: argparse.Namespace) -> None:
    a = Attacker(args.url, args.token, args.kind)
    if args.frames:
        result = asyncio.run(a.paced(args.frames, args.gap))
    else:
        result = asyncio.run(a.flood(args.seconds))
    result.update(
        label=args.label,
        kind=args.kind,
        frame_bytes=len(a.fixed) if a.fixed else len(sync_update(maps_update(a.client, 0, 4_900))),
        frames=a.frames,
        bytes=a.bytes,
        connections=a.connections,
        connect_errors=a.connect_errors,
        closes=a.closes,
    )
    line = json.dumps(result)
    print(
        ("attacker " + line) if not args.frames else line,
        file=sys.stderr if not args.frames else sys.stdout,
    )
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(line + "\n")


# -- profile --------------------------------------------------------------------------------------


def profile(path: str) -> None:
    """py-spy raw (folded) output: 'frame;frame;... count' per line. Shares of all samples."""
    total = 0
    buckets = {  # (qualified function name or None for any, file)
        "yupdate.read_update": ("read_update", "server/yupdate.py"),
        "vouch.Vouch.check": ("Vouch.check", "server/vouch.py"),
        "vouch (anything, incl. learn/_ensure)": (None, "server/vouch.py"),
        "bindings (ClientIds)": (None, "server/bindings.py"),
        "Room._vouch_for (all of it)": ("Room._vouch_for", "server/room.py"),
        "policy gate (PolicyGate.admit)": ("PolicyGate.admit", "server/policy.py"),
        "Room._on_update (all)": ("Room._on_update", "server/room.py"),
        "awareness (server/awareness.py)": (None, "server/awareness.py"),
        "store writer thread": ("SQLiteStore._write_loop", "server/store/sqlite.py"),
    }
    counts = dict.fromkeys(buckets, 0)
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        k = int(n)
        total += k
        frames = stack.split(";")
        for name, (func, file) in buckets.items():
            if any(file in fr and (func is None or fr.split(" (")[0] == func) for fr in frames):
                counts[name] += k
    loop = val = 0
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if n.isdigit() and "SQLiteStore._write_loop" not in stack:
            loop += int(n)
            if any(
                f in stack for f in ("server/yupdate.py", "server/vouch.py", "server/bindings.py")
            ):
                val += int(n)
    print(f"samples {total} (py-spy, active samples of all threads), event-loop thread {loop}")
    print(
        f"  validation (yupdate + vouch + bindings, any frame): {val} samples, "
        f"{100 * val / max(total, 1):.1f} % of all, {100 * val / max(loop, 1):.1f} % of the event-loop thread"
    )
    for name, k in counts.items():
        print(f"  {name}: {k} samples, {100 * k / max(total, 1):.1f} %")


def _lat(d: dict) -> str:
    lat = d.get("latency_ms") or {}
    cpu = (d.get("server") or {}).get("cpu_pct_total")
    ratio = d.get("delivered_ratio")
    out = f"{lat.get('p50')} / {lat.get('p95')} / {lat.get('p99')} / {lat.get('max')} · {cpu} %"
    if ratio is not None and ratio < 1:
        out += f" (delivered {ratio:.3f})"
    return out


def table(paths: list[str]) -> None:
    """Markdown cells per result line: label -> p50/p95/p99/max · server CPU (join: payload, synced)."""
    for path in paths:
        for line in Path(path).read_text().splitlines():
            d = json.loads(line)
            if d.get("scenario") == "join":
                pay, syn = d["time_to_payload_ms"], d["time_to_synced_ms"]
                cell = f"payload {pay['p50']} / {pay['p99']}, synced {syn['p50']} / {syn['p99']}"
            else:
                cell = _lat(d)
                conv = d.get("convergence") or {}
                if conv and not conv.get("converged"):
                    cell += " NOT CONVERGED"
                if d.get("disconnects"):
                    cell += f" disconnects {d['disconnects']}"
                if d.get("aborted"):
                    cell += " ABORTED"
            print(f"{d.get('ts', '')[11:19]} {d.get('label')}: {cell}")


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("base")
    a = sub.add_parser("attack")
    a.add_argument("url")
    a.add_argument("token")
    a.add_argument("kind", choices=["a", "b", "c"])
    a.add_argument("--seconds", type=float, default=15)
    a.add_argument("--frames", type=int, default=0)
    a.add_argument("--gap", type=float, default=0.3)
    a.add_argument("--out")
    a.add_argument("--label", default="")
    f = sub.add_parser("profile")
    f.add_argument("folded")
    t = sub.add_parser("table")
    t.add_argument("paths", nargs="+")
    args = p.parse_args()
    if args.cmd == "setup":
        setup(args.base)
    elif args.cmd == "attack":
        attack(args)
    elif args.cmd == "table":
        table(args.paths)
    else:
        profile(args.folded)


if __name__ == "__main__":
    main()
