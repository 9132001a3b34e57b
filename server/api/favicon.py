"""``/favicon.ico``: the web client's icon when its build has one, else a small built-in one.

Browsers ask for ``/favicon.ico`` on every page; without this route each page load logs a 404
in the console.
"""

from __future__ import annotations

import struct
from functools import cache
from pathlib import Path

from fastapi import FastAPI, Response
from fastapi.responses import FileResponse

CACHE = {"Cache-Control": "public, max-age=86400"}
# Looked for in the client build, in this order (Vite copies client/public/ into dist/).
CLIENT_ICONS = (("favicon.ico", "image/x-icon"), ("favicon.svg", "image/svg+xml"))

SIZE = 32
BACKGROUND = (0x2F, 0x6F, 0xDB)  # the first organization colour (canvas/templates.ORG_PALETTE)
NOTE = (0xFF, 0xD4, 0x3B)  # a sticky note
LINE = (0x8A, 0x6D, 0x00)


def _pixel(x: int, y: int) -> tuple[int, int, int, int]:
    """RGBA of pixel (x, y), y downwards: a rounded blue tile holding a yellow note."""
    r = 6  # corner radius
    cx = min(max(x, r), SIZE - 1 - r)
    cy = min(max(y, r), SIZE - 1 - r)
    if (x - cx) ** 2 + (y - cy) ** 2 > r * r:
        return (0, 0, 0, 0)
    if 8 <= x <= 23 and 8 <= y <= 23:
        if y in (13, 17) and 11 <= x <= 20 or y == 21 and 11 <= x <= 16:
            return (*LINE, 255)
        return (*NOTE, 255)
    return (*BACKGROUND, 255)


@cache
def builtin_ico() -> bytes:
    """A 32×32, 32-bit ICO (one BMP image), built here so the package ships no binary file."""
    rows = []
    for y in reversed(range(SIZE)):  # BMP rows go bottom-up
        row = bytearray()
        for x in range(SIZE):
            red, green, blue, alpha = _pixel(x, y)
            row += bytes((blue, green, red, alpha))
        rows.append(bytes(row))
    pixels = b"".join(rows)
    and_mask = b"\x00" * (SIZE * SIZE // 8)  # all visible: the alpha channel does the masking
    header = struct.pack(
        "<IiiHHIIiiII", 40, SIZE, SIZE * 2, 1, 32, 0, len(pixels) + len(and_mask), 0, 0, 0, 0
    )
    image = header + pixels + and_mask
    icondir = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", SIZE, SIZE, 0, 0, 1, 32, len(image), 6 + 16)
    return icondir + entry + image


def client_icon(client_dir: Path | None) -> tuple[Path, str] | None:
    for name, media_type in CLIENT_ICONS:
        if client_dir is not None and (client_dir / name).is_file():
            return client_dir / name, media_type
    return None


def install(app: FastAPI, client_dir: Path | None) -> None:
    found = client_icon(client_dir)
    if found is not None:
        path, media_type = found

        async def icon_from_client() -> FileResponse:
            return FileResponse(path, media_type=media_type, headers=CACHE)

        app.add_api_route("/favicon.ico", icon_from_client, include_in_schema=False)
        return

    async def builtin_icon() -> Response:
        return Response(builtin_ico(), media_type="image/x-icon", headers=CACHE)

    app.add_api_route("/favicon.ico", builtin_icon, include_in_schema=False)
