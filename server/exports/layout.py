"""Where each block of a board sits, in pixels, for the rendered exports (SVG, PNG, PDF).

The placement rules are the web client's (``client/src/layout.ts``): a block goes to its panel
by ``section`` and ``kind`` (never by id), into the same grid areas (the Business Model Canvas's
ten columns over three rows, the value map square, the customer profile circle), a second
block of one kind in one panel and anything unknown go to an "Other" panel. The client sizes
its grid from the window; an export has one fixed size, so the track sizes below are the
client's CSS at a 1600-pixel-wide board (``styles.css``: BMC rows 1fr 1fr 0.8fr; VPC shapes
560 px, the circle's grid inset 12 %; notes 124x84, 112x74 on a VPC), and a note sits at
``x * (area width - note width)``, ``y * (area height - note height)`` of its block's notes
area, as ``.note`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .board import Block, Board

BMC_AREAS = {
    "key-partners": "kp",
    "key-activities": "ka",
    "key-resources": "kr",
    "value-propositions": "vp",
    "customer-relationships": "cr",
    "channels": "ch",
    "customer-segments": "cs",
    "cost-structure": "co",
    "revenue-streams": "rv",
}
BMC_TEMPLATE_AREAS = (
    "kp kp ka ka vp vp cr cr cs cs",
    "kp kp kr kr vp vp ch ch cs cs",
    "co co co co co rv rv rv rv rv",
)
VALUE_MAP_AREAS = {"products": "ps", "creators": "gc", "relievers": "pr"}
VALUE_MAP_TEMPLATE_AREAS = ("ps gc", "ps pr")
PROFILE_AREAS = {"gains": "ga", "pains": "pa", "jobs": "jo"}
PROFILE_TEMPLATE_AREAS = ("ga jo", "pa jo")

MARGIN = 24
TITLE_H = 56  # the canvas title above the panels
PANEL_TITLE_H = 30
BLOCK_HEAD_H = 44  # block title and hint, above its notes area
BLOCK_PAD = 8
BOARD_W = 1600
BMC_ROWS = (300.0, 300.0, 240.0)  # 1fr 1fr 0.8fr
SHAPE = 560.0
SHAPE_GAP = 48.0  # room for the fit arrow between the value maps and the profile
CIRCLE_INSET = 0.12
OTHER_CELL = (260.0, 240.0)
BMC_NOTE = (124.0, 84.0)
VPC_NOTE = (112.0, 74.0)


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True, slots=True)
class PlacedBlock:
    block: Block
    rect: Rect  # the block's cell
    notes_area: Rect  # where its notes are laid out


@dataclass(slots=True)
class Panel:
    type: str  # "bmc" | "value-map" | "customer-profile" | "other"
    key: str
    title: str
    org: str
    frame: Rect  # the square, circle's box, grid or other area
    shape: str  # "grid" | "square" | "circle" | "none"
    blocks: list[PlacedBlock] = field(default_factory=list)


@dataclass(slots=True)
class Layout:
    width: int
    height: int
    note_w: float
    note_h: float
    panels: list[Panel]

    def placed(self) -> dict[str, PlacedBlock]:
        return {p.block.id: p for panel in self.panels for p in panel.blocks}

    def note_rect(self, block_id: str, x: float, y: float) -> Rect | None:
        placed = self.placed().get(block_id)
        if placed is None:
            return None
        a = placed.notes_area
        return Rect(
            a.x + x * max(0.0, a.w - self.note_w),
            a.y + y * max(0.0, a.h - self.note_h),
            self.note_w,
            self.note_h,
        )


def _assign(board: Board) -> tuple[list[Block], list[Block], dict[str, list[Block]], list[Block]]:
    """Blocks into panels, as ``buildLayout`` in the client does."""
    bmc: list[Block] = []
    profile: list[Block] = []
    maps: dict[str, list[Block]] = {}
    other: list[Block] = []
    used: set[str] = set()
    for b in board.blocks:  # already by order, then id
        placed = False
        if b.section == "bmc" and b.kind in BMC_AREAS:
            key, cells = f"bmc:{BMC_AREAS[b.kind]}", bmc
        elif b.section == "customer-profile" and b.kind in PROFILE_AREAS:
            key, cells = f"cp:{PROFILE_AREAS[b.kind]}", profile
        elif b.section == "value-map" and b.kind in VALUE_MAP_AREAS:
            key, cells = f"vm:{b.org}:{VALUE_MAP_AREAS[b.kind]}", maps.setdefault(b.org, [])
        else:
            key, cells = "", other
        if key and key not in used:
            used.add(key)
            cells.append(b)
            placed = True
        if not placed:
            other.append(b)
    return bmc, profile, maps, other


def _grid_rects(areas: tuple[str, ...], frame: Rect, rows: tuple[float, ...]) -> dict[str, Rect]:
    """Each named area's rectangle in a CSS-style grid of equal columns."""
    grid = [row.split() for row in areas]
    cols = len(grid[0])
    col_w = frame.w / cols
    total = sum(rows)
    row_y = [frame.y]
    for r in rows:
        row_y.append(row_y[-1] + frame.h * r / total)
    out: dict[str, Rect] = {}
    for name in {n for row in grid for n in row}:
        cells = [(i, j) for i, row in enumerate(grid) for j, n in enumerate(row) if n == name]
        i0, i1 = min(c[0] for c in cells), max(c[0] for c in cells)
        j0, j1 = min(c[1] for c in cells), max(c[1] for c in cells)
        out[name] = Rect(
            frame.x + j0 * col_w, row_y[i0], (j1 - j0 + 1) * col_w, row_y[i1 + 1] - row_y[i0]
        )
    return out


def _place(block: Block, rect: Rect) -> PlacedBlock:
    area = Rect(
        rect.x + BLOCK_PAD,
        rect.y + BLOCK_HEAD_H,
        max(0.0, rect.w - 2 * BLOCK_PAD),
        max(0.0, rect.h - BLOCK_HEAD_H - BLOCK_PAD),
    )
    return PlacedBlock(block, rect, area)


def layout(board: Board) -> Layout:
    bmc, profile, maps, other = _assign(board)
    panels: list[Panel] = []
    inner_w = BOARD_W - 2 * MARGIN
    y = float(MARGIN + TITLE_H)
    vpc = not bmc
    note_w, note_h = VPC_NOTE if vpc else BMC_NOTE

    if bmc:
        frame = Rect(MARGIN, y, inner_w, sum(BMC_ROWS))
        rects = _grid_rects(BMC_TEMPLATE_AREAS, frame, BMC_ROWS)
        panel = Panel("bmc", "bmc", "", "", frame, "grid")
        panel.blocks = [_place(b, rects[BMC_AREAS[b.kind]]) for b in bmc]
        panels.append(panel)
        y = frame.y + frame.h + MARGIN

    shapes = [("value-map", org, cells) for org, cells in maps.items() if cells]
    if profile:
        shapes.append(("customer-profile", "", profile))
    if shapes:
        # One row: value maps side by side, then the profile, as the client lays them out.
        n = len(shapes)
        side = min(SHAPE, (inner_w - (n - 1) * SHAPE_GAP) / n)
        row_w = n * side + (n - 1) * SHAPE_GAP
        x = MARGIN + (inner_w - row_w) / 2
        top = y + PANEL_TITLE_H
        for kind, org, cells in shapes:
            frame = Rect(x, top, side, side)
            if kind == "value-map":
                name = board.org_name(org) if org else ""
                panel = Panel(
                    kind,
                    f"vm:{org}",
                    f"Value Map — {name}" if name else "Value Map",
                    org,
                    frame,
                    "square",
                )
                rects = _grid_rects(VALUE_MAP_TEMPLATE_AREAS, frame, (1.0, 1.0))
                panel.blocks = [_place(b, rects[VALUE_MAP_AREAS[b.kind]]) for b in cells]
            else:
                inset = side * CIRCLE_INSET
                inner = Rect(x + inset, top + inset, side - 2 * inset, side - 2 * inset)
                panel = Panel(kind, "cp", "Customer Profile", "", frame, "circle")
                rects = _grid_rects(PROFILE_TEMPLATE_AREAS, inner, (1.0, 1.0))
                panel.blocks = [_place(b, rects[PROFILE_AREAS[b.kind]]) for b in cells]
            panels.append(panel)
            x += side + SHAPE_GAP
        y = top + side + MARGIN

    if other:
        cw, ch = OTHER_CELL
        per_row = max(1, int(inner_w // cw))
        cw = inner_w / per_row
        top = y + PANEL_TITLE_H
        rows = (len(other) + per_row - 1) // per_row
        frame = Rect(MARGIN, top, inner_w, rows * ch)
        panel = Panel("other", "other", "Other", "", frame, "none")
        for i, b in enumerate(other):
            r, c = divmod(i, per_row)
            panel.blocks.append(_place(b, Rect(MARGIN + c * cw, top + r * ch, cw, ch)))
        panels.append(panel)
        y = top + frame.h + MARGIN

    return Layout(BOARD_W, int(round(y)), note_w, note_h, panels)
