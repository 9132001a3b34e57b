"""PNG and PDF of the board, rendered from its SVG (``svg.py``) by cairosvg.

cairosvg (on the C library libcairo2, a Debian package) is the well-kept pure-Python-API
renderer of SVG; a headless browser would render the client itself but costs a browser
process per export. ``unsafe`` stays off: the renderer reads no file and fetches no URL, and
our SVG references none. Rendering is CPU-bound and holds the GIL for a few tens of
milliseconds per board, so the API runs it in a worker thread.
"""

from __future__ import annotations

import cairosvg


def svg_to_png(svg: bytes, scale: float = 1.0) -> bytes:
    out = cairosvg.svg2png(bytestring=svg, scale=scale, unsafe=False)
    assert isinstance(out, bytes)
    return out


def svg_to_pdf(svg: bytes) -> bytes:
    out = cairosvg.svg2pdf(bytestring=svg, unsafe=False)
    assert isinstance(out, bytes)
    return out
