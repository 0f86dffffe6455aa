"""Procedural pedestrians: a re-id dataset that needs no download.

Why it exists: every run, test and CI job needs data that is deterministic,
fast to make, and hard in the way cross-resolution re-id is hard. Identities
come in small groups that share coarse appearance (proportions, colours, bags)
and differ only in fine detail (stripe frequency and orientation, checks,
small logos, backpack straps), which 2x-4x downsampling destroys; other
identities differ in coarse cues, which survive. Cameras differ in
background, colour cast, viewpoint (front/back view, mirror, scale, shift)
and images in pose, scale, occlusion and noise.

Drawing is vectorised over a whole batch: per-image parameters are arrays of
shape ``(N, 1, 1)`` broadcast against pixel-coordinate grids, the person is
first drawn as a map of part labels, and colours come from one palette
lookup. Rendering is separated from sampling so that the images do not depend
on the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from harness import DatasetError, Option, Record, ReidDataset, RunConfig, hookimpl, read_options

# Part labels of the label map; the palette is indexed by them.
BG, SKIN, HAIR, TOP, BOTTOM, SHOES, BAG, LOGO, OCC, TOP2 = range(10)
NUM_PARTS = 10

# Pattern kinds of a garment.
SOLID, STRIPES, CHECKS, BLOCKS = range(4)

# Fine-detail variants that group members draw without replacement:
# (kind, angle in degrees, frequency in cycles per person height).
_FINE_VARIANTS: tuple[tuple[int, float, float], ...] = (
    (STRIPES, 0.0, 8.0),
    (STRIPES, 0.0, 15.0),
    (STRIPES, 90.0, 8.0),
    (STRIPES, 90.0, 15.0),
    (STRIPES, 45.0, 10.0),
    (STRIPES, -45.0, 10.0),
    (CHECKS, 0.0, 9.0),
    (CHECKS, 45.0, 12.0),
    (SOLID, 0.0, 0.0),
)

_NOISE_BANK = 32
_NOISE_MAX = 12  # noise is clipped to +-12 and colours kept in [12, 243]: no overflow
_BRIGHTNESS = np.linspace(0.88, 1.12, 9, dtype=np.float32)


def _pack(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] -> one uint32 per pixel whose bytes are R, G, B, 0.

    Colours are squeezed into [12, 243] so that adding noise in [-12, 12] to
    the bytes never wraps; one uint32 per pixel makes palette lookups cheap.
    """
    span = 255 - 2 * _NOISE_MAX
    rgb8 = (np.clip(rgb, 0.0, 1.0) * span + (_NOISE_MAX + 0.5)).astype(np.uint8)
    rgba = np.zeros((*rgb8.shape[:-1], 4), np.uint8)
    rgba[..., :3] = rgb8
    return rgba.view(np.uint32)[..., 0]


#: bounds that keep a typo (``--test-ids 100000000``) from running for hours or filling a disk
MAX_IMAGES = 2_000_000
MAX_SIDE = 2048


@dataclass(frozen=True)
class SynthSpec:
    """The recipe of one synthetic dataset; equal specs give equal pixels."""

    train_ids: int = 64
    test_ids: int = 64
    cameras: int = 4
    images_per_camera: int = 4
    height: int = 64
    width: int = 32
    seed: int | Sequence[int] = 0

    def __post_init__(self) -> None:
        if self.train_ids < 1 or self.test_ids < 1:
            raise ValueError("synthetic data needs at least one train and one test identity")
        if self.cameras < 2:
            raise ValueError("synthetic data needs at least 2 cameras (query and gallery)")
        if self.images_per_camera < 1:
            raise ValueError("synthetic data needs at least 1 image per camera")
        if self.height < 8 or self.width < 4:
            raise ValueError(f"image size {self.height}x{self.width} is too small")
        if self.height > MAX_SIDE or self.width > MAX_SIDE:
            raise ValueError(
                f"image size {self.height}x{self.width} is too large (at most {MAX_SIDE} a side)"
            )
        images = (self.train_ids + self.test_ids) * self.cameras * self.images_per_camera
        if images > MAX_IMAGES:  # checked before anything is drawn or written
            raise ValueError(
                f"{images:,} images is too many for synthetic data (at most {MAX_IMAGES:,}): "
                "fewer identities, cameras or images per camera"
            )


@dataclass
class SynthImages:
    """Rendered images of one split with their labels (camid 0-based)."""

    images: np.ndarray  # N x H x W x 3 uint8
    pids: np.ndarray  # int, 0-based within the split
    camids: np.ndarray
    shots: np.ndarray  # index of the image within (pid, camid)


# ---------------------------------------------------------------------------
# Identities, cameras and images: random parameters as arrays
# ---------------------------------------------------------------------------


def _hsv(rng: np.random.Generator, n: int, s: tuple, v: tuple) -> np.ndarray:
    """Random saturated colours; HSV keeps hue, saturation and value independent."""
    h = rng.uniform(0, 6, n)
    sat = rng.uniform(*s, n)
    val = rng.uniform(*v, n)
    i = np.floor(h).astype(int) % 6
    f = h - np.floor(h)
    p, q, t = val * (1 - sat), val * (1 - sat * f), val * (1 - sat * (1 - f))
    table = np.stack(
        [
            np.stack([val, t, p], -1),
            np.stack([q, val, p], -1),
            np.stack([p, val, t], -1),
            np.stack([p, q, val], -1),
            np.stack([t, p, val], -1),
            np.stack([val, p, q], -1),
        ],
        1,
    )
    return table[np.arange(n), i].astype(np.float32)


def _clothing_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """Clothes: mostly saturated hues, sometimes greys (black, white, grey)."""
    colours = _hsv(rng, n, (0.35, 0.95), (0.25, 0.95))
    grey = rng.random(n) < 0.25
    colours[grey] = rng.uniform(0.08, 0.92, (int(grey.sum()), 1)).astype(np.float32)
    return colours


def _identities(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Identity parameters; ids come in groups that differ only in fine detail."""
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(int(rng.choice([1, 2, 2, 3])))
    sizes[-1] -= sum(sizes) - n
    group = np.repeat(np.arange(len(sizes)), sizes)
    g = len(sizes)

    def per_group(values: np.ndarray) -> np.ndarray:
        return values[group]

    skin_base = np.array([[0.96, 0.80, 0.69], [0.87, 0.67, 0.52], [0.62, 0.44, 0.32]], np.float32)
    skin = skin_base[rng.integers(0, 3, g)] * rng.uniform(0.9, 1.05, (g, 1)).astype(np.float32)
    hair = _hsv(rng, g, (0.2, 0.7), (0.05, 0.45))
    blond = rng.random(g) < 0.15
    hair[blond] = np.array([0.85, 0.72, 0.45], np.float32)
    ids = {
        "group": group,
        "height": per_group(rng.uniform(0.86, 1.0, g)),
        "shoulder": per_group(rng.uniform(0.105, 0.14, g)),
        "hip": per_group(rng.uniform(0.075, 0.10, g)),
        "waist": per_group(rng.uniform(0.46, 0.53, g)),
        "head": per_group(rng.uniform(0.055, 0.07, g)),
        "leg": per_group(rng.uniform(0.032, 0.045, g)),
        "long_hair": per_group(rng.random(g) < 0.3),
        "sleeve": per_group(rng.choice([0.07, 0.16, 0.30], g)),
        "legwear": per_group(rng.choice([0, 0, 0, 1, 2], g)),  # trousers, shorts, skirt
        "bag": per_group(rng.choice([0, 0, 1, 2], g)),  # none, backpack, handbag
        "bag_side": per_group(rng.choice([-1.0, 1.0], g)),
        "skin": per_group(skin),
        "hair": per_group(hair),
        "top_a": per_group(_clothing_colours(rng, g)),
        "top_b": per_group(_clothing_colours(rng, g)),
        "bottom_a": per_group(_clothing_colours(rng, g)),
        "bottom_b": per_group(_clothing_colours(rng, g)),
        "shoes": per_group(_clothing_colours(rng, g) * 0.6),
        "bag_colour": per_group(_clothing_colours(rng, g)),
        "bottom_kind": per_group(rng.choice([SOLID, SOLID, SOLID, STRIPES, CHECKS], g)),
        "bottom_freq": per_group(rng.uniform(7.0, 12.0, g)),
        "bottom_angle": per_group(rng.choice([0.0, 90.0], g)),
    }
    # Fine detail: within a group, every member gets a distinct pattern variant
    # and its own logo, on top of the shared coarse look.
    top_kind = np.empty(n, int)
    top_angle = np.empty(n, np.float32)
    top_freq = np.empty(n, np.float32)
    start = 0
    for size in sizes:
        picks = rng.permutation(len(_FINE_VARIANTS))[:size]
        for j, k in enumerate(picks):
            kind, angle, freq = _FINE_VARIANTS[k]
            top_kind[start + j] = kind
            top_angle[start + j] = angle
            top_freq[start + j] = freq * rng.uniform(0.92, 1.08)
        start += size
    blocks = per_group(rng.random(g) < 0.15)
    top_kind[blocks & (top_kind == SOLID)] = BLOCKS
    ids.update(
        top_kind=top_kind,
        top_angle=top_angle,
        top_freq=top_freq,
        logo=rng.choice([0, 1, 2, 3], n, p=[0.4, 0.2, 0.2, 0.2]),  # none, square, disc, diamond
        logo_x=rng.uniform(-0.03, 0.03, n).astype(np.float32),
        logo_y=rng.uniform(0.23, 0.33, n).astype(np.float32),
        logo_size=rng.uniform(0.025, 0.04, n).astype(np.float32),
        logo_colour=_clothing_colours(rng, n),
    )
    return ids


def _cameras(rng: np.random.Generator, c: int, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Camera parameters and a static background image per camera."""
    h, w = size
    yy = (np.arange(h, dtype=np.float32)[:, None] + 0.5) / h
    xx = (np.arange(w, dtype=np.float32)[None, :] + 0.5) / w
    backgrounds = np.empty((c, h, w, 3), np.float32)
    for k in range(c):
        top, bottom = _hsv(rng, 2, (0.05, 0.45), (0.3, 0.85))
        floor_y = rng.uniform(0.72, 0.9)
        floor = _hsv(rng, 1, (0.0, 0.3), (0.2, 0.7))[0]
        bg = top + (bottom - top) * yy[..., None]
        bg = np.broadcast_to(bg, (h, w, 3)).copy()
        for _ in range(int(rng.integers(1, 4))):  # wall panels, doors, pillars
            x0, x1 = np.sort(rng.uniform(0, 1, 2))
            panel = _hsv(rng, 1, (0.0, 0.5), (0.2, 0.9))[0]
            inside = (xx >= x0) & (xx < x1) & (yy < floor_y)
            bg = np.where(inside[..., None], 0.5 * bg + 0.5 * panel, bg)
        bg = np.where((yy >= floor_y)[..., None], floor * (0.8 + 0.4 * yy[..., None]), bg)
        backgrounds[k] = bg
    gain = rng.uniform(0.85, 1.15, (c, 3)).astype(np.float32)
    gain /= gain.mean(1, keepdims=True) / rng.uniform(0.8, 1.1, (c, 1)).astype(np.float32)
    lit = backgrounds[:, None] * (gain[:, None, :] * _BRIGHTNESS[None, :, None])[:, :, None, None]
    return {
        "background": _pack(lit),  # camera x brightness level x H x W
        "gain": gain,
        "p_front": np.resize(np.array([0.85, 0.15, 0.6, 0.35], np.float32), c),
        "p_flip": np.resize(np.array([0.2, 0.8, 0.5, 0.3], np.float32), c),
        "scale": rng.uniform(0.82, 0.95, c).astype(np.float32),
        "shift": rng.uniform(-0.08, 0.08, c).astype(np.float32),
        "top": rng.uniform(0.02, 0.06, c).astype(np.float32),
    }


def _image_params(
    rng: np.random.Generator, pids: np.ndarray, camids: np.ndarray, cams: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Per-image draws: view, mirror, pose, scale, occlusion, noise."""
    n = len(pids)
    f32 = np.float32
    return {
        "pid": pids,
        "cam": camids,
        "front": rng.random(n) < cams["p_front"][camids],
        "flip": rng.random(n) < cams["p_flip"][camids],
        "scale": cams["scale"][camids] * rng.uniform(0.94, 1.06, n).astype(f32),
        "shift": cams["shift"][camids] + rng.uniform(-0.04, 0.04, n).astype(f32),
        "top": cams["top"][camids] + rng.uniform(-0.02, 0.02, n).astype(f32),
        "phase": rng.uniform(-1, 1, n).astype(f32),
        "swing": rng.uniform(-1, 1, n).astype(f32),
        "brightness": rng.integers(0, len(_BRIGHTNESS), n),
        "occ": rng.choice([0, 1, 2], n, p=[0.75, 0.15, 0.10]),  # none, low box, pole
        "occ_pos": rng.uniform(0.0, 1.0, n).astype(f32),
        "occ_colour": _clothing_colours(rng, n),
        "noise": rng.integers(0, _NOISE_BANK, n),
    }


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

_LEVELS = 16  # quantised pattern mix levels
_SHADES = np.array(
    [1.0, 0.93, 0.84, 0.72], np.float32
)  # 2 bits of the palette code  # body shading by distance to axis


def _wave_table() -> np.ndarray:
    """Soft square wave over one cycle in 256 steps, 0 at phase 0 (solid = all 0)."""
    phase = (np.arange(256, dtype=np.float32) + 0.5) / 256
    tri = np.abs(phase - 0.5)  # 0.5 at phase 0
    wave = 1.0 - np.clip((tri - 0.25) * 6.0 + 0.5, 0.0, 1.0)
    return np.round(wave * (_LEVELS - 1)).astype(np.uint8)


def _xor_table() -> np.ndarray:
    """Checks from two stripe levels a, b: a + b - 2ab (soft xor), index (a << 4) | b."""
    a, b = np.divmod(np.arange(256), 16)
    a, b = a / 15.0, b / 15.0
    return np.round((a + b - 2 * a * b) * 15).astype(np.uint8)


_WAVE = _wave_table()
_XOR = _xor_table()


def _phase(values: np.ndarray) -> np.ndarray:
    """Cycles -> uint8 phase (1/256 cycle); uint8 sums then wrap like phases do."""
    return ((values * 256.0).astype(np.int64) & 255).astype(np.uint8)


class _Canvas:
    """A batch of label maps painted one shape at a time, shapes as row intervals.

    Every shape here is convex along a row, so it is one interval of columns
    per (image, row); a pixel is inside when ``(col - start) mod 2^k < width``,
    one subtraction and one comparison on small integers, restricted to the
    rows any image of the batch needs.
    """

    def __init__(self, n: int, h: int, w: int, cx: np.ndarray, ph: np.ndarray, flip: np.ndarray):
        self.dtype = np.uint8 if w < 256 else np.uint16
        self.labels = np.zeros((n, h, w), np.uint8)
        self.cols = np.arange(w, dtype=self.dtype).reshape(1, 1, w)
        self.w = w
        self.cx, self.ph, self.flip = cx, ph, flip

    def pixels(self, left: np.ndarray, right: np.ndarray, rows: np.ndarray, part) -> None:
        """Paint pixel-centre interval [left, right) (pixel units) on the given rows."""
        c0 = np.clip(np.ceil(left - 0.5), 0, self.w)
        c1 = np.clip(np.ceil(right - 0.5), 0, self.w)
        width = np.where(rows, np.maximum(c1 - c0, 0), 0)
        used = np.flatnonzero(width.reshape(width.shape[0], -1).any(axis=0))
        if used.size == 0:
            return
        r0, r1 = int(used[0]), int(used[-1]) + 1
        c0 = np.broadcast_to(c0, width.shape)[:, r0:r1].astype(self.dtype)
        inside = (self.cols - c0) < width[:, r0:r1].astype(self.dtype)
        part = np.asarray(part, np.uint8)
        np.copyto(self.labels[:, r0:r1], part, where=inside)

    def body(self, centre, half, rows: np.ndarray, part) -> None:
        """Paint body-unit interval ``centre +- half`` (x mirrored in flipped views)."""
        a = self.cx + self.flip * self.ph * (centre - half)
        b = self.cx + self.flip * self.ph * (centre + half)
        self.pixels(np.minimum(a, b), np.maximum(a, b), rows, part)


def _patterns(kind, angle, freq, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Garment mix level (0..15) per pixel: stripes, checks or solid, in body units.

    The phase is linear in x and y, so it is one uint8 addition of a per-column
    and a per-row term (wrapping is the periodicity); the wave is a lookup.
    """
    rad = np.deg2rad(angle)
    f = np.where((kind == STRIPES) | (kind == CHECKS), freq, 0.0).astype(np.float32)
    c, s = np.cos(rad), np.sin(rad)
    level = _WAVE[_phase(f * c * px) + _phase(f * s * py)]
    checks = np.flatnonzero(kind.ravel() == CHECKS)
    if checks.size:
        f2, c2, s2 = f[checks], c[checks], s[checks]
        other = _WAVE[_phase(-f2 * s2 * px[checks]) + _phase(f2 * c2 * py[checks])]
        level[checks] = _XOR[(level[checks] << 4) | other]
    return level


def _band(rows: np.ndarray) -> slice:
    """The rows any image of the batch needs (rows: N x H x 1 bool)."""
    used = np.flatnonzero(rows.any(axis=0))
    return slice(int(used[0]), int(used[-1]) + 1) if used.size else slice(0, 0)


def render(
    params: dict[str, np.ndarray],
    ids: dict[str, np.ndarray],
    cams: dict[str, np.ndarray],
    noise: np.ndarray,
    size: tuple[int, int],
) -> np.ndarray:
    """Draw a batch of images (N x H x W x 3 uint8) from their parameters."""
    h, w = size
    n = len(params["pid"])
    pid = params["pid"]

    def col(values: np.ndarray) -> np.ndarray:  # per-image scalar -> (N, 1, 1)
        return np.asarray(values).reshape(n, 1, 1).astype(np.float32)

    def ident(key: str) -> np.ndarray:
        return col(ids[key][pid])

    # Body units: person height is 1, x is 0 on the body axis (negated in
    # mirrored views), y is 0 at the top of the head.
    ph = col(params["scale"] * ids["height"][pid]) * h
    top = col(params["top"]) * h
    cx = (0.5 + col(params["shift"])) * w
    flip = np.where(col(params["flip"]) > 0, -1.0, 1.0).astype(np.float32)
    xs = np.arange(w, dtype=np.float32).reshape(1, 1, w) + 0.5
    ys = np.arange(h, dtype=np.float32).reshape(1, h, 1) + 0.5
    px = (xs - cx) / ph * flip  # (N, 1, W)
    py = (ys - top) / ph  # (N, H, 1)
    front = col(params["front"]) > 0
    canvas = _Canvas(n, h, w, cx, ph, flip)
    body = canvas.body

    shoulder_y, waist = np.float32(0.19), ident("waist")
    knee, ankle = np.float32(0.74), np.float32(0.95)
    hip, leg, shoulder = ident("hip"), ident("leg"), ident("shoulder")

    # Legs: two slanted bars; the walking phase spreads them. Shorts and skirts
    # show skin below their hem.
    legwear = ident("legwear")
    hem = np.where(legwear == 0, ankle, np.where(legwear == 1, waist + 0.14, knee))
    phase = col(params["phase"]) * 0.12
    legs = (py > waist) & (py < ankle)
    leg_part = np.where(legwear == 0, BOTTOM, SKIN)
    for side in (-1.0, 1.0):
        centre = side * (hip - leg) + side * phase * (py - waist)
        body(centre, leg, legs, leg_part)
        body(centre, leg * 1.05, legs & (py < hem), BOTTOM)
        foot = side * (hip - leg) + side * phase * (ankle - waist) + side * 0.01
        body(foot, leg * 1.25, (py >= ankle) & (py < 1.0), SHOES)
    body(0.0, hip, (py > waist) & (py < waist + 0.1), BOTTOM)
    body(0.0, hip + (py - waist) * 0.35, (legwear == 2) & (py > waist) & (py < knee - 0.05), BOTTOM)

    # Arms, then the torso over them; colour-blocked tops have a lower band.
    arm = np.float32(0.03)
    swing = col(params["swing"]) * 0.08
    ay = py - shoulder_y
    arm_rows = (ay > 0.01) & (ay < 0.33)
    for side in (-1.0, 1.0):
        centre = side * (shoulder - 0.5 * arm) + side * 0.05 * ay + side * swing * ay
        body(centre, arm, arm_rows, SKIN)
        body(centre, arm, arm_rows & (ay < ident("sleeve")), TOP)
    half = shoulder - (shoulder - hip) * np.clip(ay / (waist - shoulder_y), 0, 1) * 0.6 - 0.5 * arm
    torso = (ay > 0) & (py < waist + 0.02)
    body(0.0, half, torso, TOP)
    body(0.0, half, torso & (ident("top_kind") == BLOCKS) & (py > 0.33), TOP2)

    # Bags: backpack seen from behind, straps from the front, handbag at one side.
    bag = ident("bag")
    body(0.0, shoulder * 0.75, (bag == 1) & ~front & (ay > 0.03) & (ay < 0.25), BAG)
    for side in (-1.0, 1.0):
        body(side * shoulder * 0.55, 0.012, (bag == 1) & front & (ay > 0) & (ay < 0.2), BAG)
    hand_rows = (bag == 2) & (py > 0.42) & (py < 0.56)
    body(ident("bag_side") * (shoulder + 0.06), 0.05, hand_rows, BAG)

    # A logo on the chest, front view only: fine detail.
    logo, r = ident("logo"), ident("logo_size")
    dy = np.abs(py - ident("logo_y"))
    disc = r * np.sqrt(np.maximum(0.0, 1.0 - (dy / r) ** 2))
    logo_half = np.where(logo == 1, r, np.where(logo == 2, disc, 1.2 * r - dy))
    logo_rows = (logo > 0) & front & (dy < 1.2 * r) & (logo_half > 0)
    body(ident("logo_x"), logo_half, logo_rows, LOGO)

    # Neck, head, hair.
    head_r = ident("head")
    rx, ry = head_r * 0.85, head_r * 1.15
    hcy = shoulder_y - head_r * 1.25
    body(0.0, head_r * 0.45, (py > hcy) & (py < shoulder_y + 0.01), SKIN)
    long_hair = ident("long_hair") > 0
    hair_back = long_hair & ~front & (py > hcy) & (py < shoulder_y + 0.12)
    body(0.0, rx * 1.3, hair_back, HAIR)
    hy = (py - hcy) / ry
    head_half = rx * np.sqrt(np.maximum(0.0, 1.0 - hy * hy))
    head_rows = np.abs(hy) < 1.0
    body(0.0, head_half, head_rows, np.where(front, SKIN, HAIR))
    body(0.0, head_half, head_rows & (hy < -0.35), HAIR)
    sides = long_hair & front & (hy > -0.3) & (py < shoulder_y + 0.08)
    for side in (-1.0, 1.0):
        body(side * rx, rx * 0.3, sides, HAIR)

    # Occluders, in image coordinates: a low box or a pole.
    occ, pos = col(params["occ"]), col(params["occ_pos"])
    canvas.pixels(np.float32(0), np.float32(w), (occ == 1) & (ys > (0.72 + 0.15 * pos) * h), OCC)
    canvas.pixels((pos - 0.09) * w, (pos + 0.09) * w, (occ == 2) & (ys > 0), OCC)
    labels = canvas.labels

    # Colours: the label, the garment's pattern level and a shade level index a
    # per-image palette that already holds lighting, colour cast and shading.
    mix = np.zeros((n, h, w), np.uint8)
    rows = _band((py > shoulder_y - 0.01) & (py < np.maximum(waist + 0.03, shoulder_y + 0.32)))
    kind, angle, freq = ident("top_kind"), ident("top_angle"), ident("top_freq")
    mix[:, rows] = _patterns(kind, angle, freq, px, py[:, rows])
    rows = _band((py > waist - 0.01) & (py < ankle))
    kind, angle, freq = ident("bottom_kind"), ident("bottom_angle"), ident("bottom_freq")
    bottom = _patterns(kind, angle, freq, px, py[:, rows])
    np.copyto(mix[:, rows], bottom, where=labels[:, rows] == BOTTOM)
    shade = np.digitize(px * px, np.array([0.002, 0.005, 0.01], np.float32)).astype(np.uint8)
    code = (labels.astype(np.uint16) << 6) | ((mix << 2) | shade)

    part_a = np.zeros((n, NUM_PARTS, 3), np.float32)
    for part, key in (
        (SKIN, "skin"),
        (HAIR, "hair"),
        (TOP, "top_a"),
        (TOP2, "top_b"),
        (BOTTOM, "bottom_a"),
        (SHOES, "shoes"),
        (BAG, "bag_colour"),
        (LOGO, "logo_colour"),
    ):
        part_a[:, part] = ids[key][pid]
    part_a[:, OCC] = params["occ_colour"]
    part_b = part_a.copy()
    part_b[:, TOP] = ids["top_b"][pid]
    part_b[:, BOTTOM] = ids["bottom_b"][pid]
    t = (np.arange(_LEVELS, dtype=np.float32) / (_LEVELS - 1)).reshape(1, 1, _LEVELS, 1)
    mixed = part_a[:, :, None] + (part_b - part_a)[:, :, None] * t  # N, parts, levels, 3
    gain = cams["gain"][params["cam"]] * _BRIGHTNESS[params["brightness"]][:, None]
    shaded = mixed[:, :, :, None, :] * _SHADES.reshape(1, 1, 1, -1, 1)
    palette = _pack(shaded * gain.reshape(n, 1, 1, 1, 3)).reshape(n, -1)  # code -> RGB0

    packed = np.empty((n, h, w), np.uint32)
    rgba = packed.view(np.uint8).reshape(n, h, w, 4)
    is_bg = labels == BG
    background = cams["background"]
    for i in range(n):
        np.take(palette[i], code[i], out=packed[i])
        np.copyto(packed[i], background[params["cam"][i], params["brightness"][i]], where=is_bg[i])
        rgba[i] += noise[params["noise"][i]].view(np.uint8)  # wraps back: no overflow
    # Drop the fourth byte; cv2 does this ~10x faster than a strided numpy copy.
    return cv2.cvtColor(rgba.reshape(n * h, w, 4), cv2.COLOR_RGBA2RGB).reshape(n, h, w, 3)


# ---------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------


def _rng(seed: int | Sequence[int], stream: int) -> np.random.Generator:
    base = [int(s) for s in (seed if isinstance(seed, Sequence) else [seed])]
    return np.random.default_rng([*base, stream])


def _render_split(
    spec: SynthSpec, num_ids: int, stream: int, cams: dict, batch: int = 256
) -> SynthImages:
    rng = _rng(spec.seed, stream)
    ids = _identities(rng, num_ids)
    k = spec.images_per_camera
    pids = np.repeat(np.arange(num_ids), spec.cameras * k)
    camids = np.tile(np.repeat(np.arange(spec.cameras), k), num_ids)
    shots = np.tile(np.arange(k), num_ids * spec.cameras)
    params = _image_params(rng, pids, camids, cams)
    noise = np.zeros((_NOISE_BANK, spec.height, spec.width, 4), np.int8)
    sigma = rng.normal(0.0, 4.0, (_NOISE_BANK, spec.height, spec.width, 3))
    noise[..., :3] = np.clip(np.round(sigma), -_NOISE_MAX, _NOISE_MAX)
    size = (spec.height, spec.width)
    images = np.empty((len(pids), spec.height, spec.width, 3), np.uint8)
    for start in range(0, len(pids), batch):
        part = {key: value[start : start + batch] for key, value in params.items()}
        images[start : start + batch] = render(part, ids, cams, noise, size)
    return SynthImages(images, pids, camids, shots)


def generate(spec: SynthSpec) -> tuple[SynthImages, SynthImages]:
    """Render the train and test identities of ``spec`` (independent id groups)."""
    cams = _cameras(_rng(spec.seed, 1), spec.cameras, (spec.height, spec.width))
    train = _render_split(spec, spec.train_ids, 2, cams)
    test = _render_split(spec, spec.test_ids, 3, cams)
    return train, test


#: The size the generator draws at when a run names no HR size (Market-1501's native size).
NATIVE_SIZE = (128, 64)

#: Declared once, with the size each preset wants (a 2-core CPU run, a GPU run, a test).
SYNTH_OPTIONS: dict[str, Option] = {
    "synth_train_ids": Option(
        64, "training identities", presets={"smoke": 8, "cpu": 100, "paper": 500}, min=2
    ),
    "synth_test_ids": Option(
        64,
        "test identities (query + gallery)",
        presets={"smoke": 6, "cpu": 100, "paper": 500},
        min=1,
    ),
    "synth_cameras": Option(4, "cameras (>= 2); camera 0 gives the LR queries", min=2),
    "synth_images_per_camera": Option(
        4, "images per identity per camera", presets={"smoke": 2, "cpu": 4, "paper": 6}, min=1
    ),
    "synth_seed": Option(0, "generator seed, combined with the run's seed", min=0),
}


def spec_from_config(config: RunConfig) -> SynthSpec:
    """The spec a run asks for: its HR size, seeds and ``synth_*`` options.

    The pedestrians are drawn at the run's HR size (the native size of this
    dataset is whatever it is drawn at), so LR queries are made from the
    drawing itself, never from a resized copy.
    """
    opts = read_options(config, SYNTH_OPTIONS)
    return SynthSpec(
        train_ids=opts["synth_train_ids"],
        test_ids=opts["synth_test_ids"],
        cameras=opts["synth_cameras"],
        images_per_camera=opts["synth_images_per_camera"],
        height=config.hr_height or NATIVE_SIZE[0],
        width=config.hr_width or NATIVE_SIZE[1],
        seed=(opts["synth_seed"], int(config.seed)),
    )


def build_dataset(spec: SynthSpec) -> ReidDataset:
    """Train on the train ids; query: each test id's first image in each camera.

    The gallery is the other test images; with one image per camera it is every
    test image, which is sound because evaluation removes gallery images of the
    query's own id and camera (so a query never meets its own copy).
    """
    train, test = generate(spec)
    offset = spec.train_ids  # test ids never share a number with train ids
    train_records = [
        Record(img, int(p), int(c))
        for img, p, c in zip(train.images, train.pids, train.camids, strict=True)
    ]
    query, gallery = [], []
    for img, p, c, s in zip(test.images, test.pids, test.camids, test.shots, strict=True):
        record = Record(img, int(p) + offset, int(c))
        if s == 0:
            query.append(record)
        if s > 0 or spec.images_per_camera == 1:
            gallery.append(record)
    return ReidDataset(
        name="synthetic",
        train=train_records,
        query=query,
        gallery=gallery,
        default_lr_cameras=(0,),
        hr_size=(spec.height, spec.width),
        info={
            "source": "procedural (plugins.data.synthetic)",
            "synth_seed": list(spec.seed) if isinstance(spec.seed, Sequence) else spec.seed,
            "synth_cameras": spec.cameras,
            "synth_images_per_camera": spec.images_per_camera,
            "test_pid_offset": offset,
        },
    )


def synthetic_dataset(root: str | None, config: RunConfig) -> ReidDataset:
    """Dataset factory: generated in memory, so a ``--data-root`` is a mistake worth saying."""
    if root is not None:
        raise DatasetError(
            f"--data-root {root} was given, but the synthetic dataset is generated "
            f"and reads no folder; "
            "drop --data-root, or name the dataset of that folder with --data "
            "(harness data synth writes synthetic data in a real layout)"
        )
    return build_dataset(spec_from_config(config))


# ---------------------------------------------------------------------------
# Writing the synthetic data in official folder layouts
# ---------------------------------------------------------------------------

LAYOUTS = ("market1501", "dukemtmc", "cuhk03", "cuhk03-partial", "viper", "caviar")


def write_layout(
    out_dir: str | Path,
    layout: str,
    *,
    train_ids: int = SYNTH_OPTIONS["synth_train_ids"].default,
    test_ids: int = SYNTH_OPTIONS["synth_test_ids"].default,
    cameras: int = SYNTH_OPTIONS["synth_cameras"].default,
    images_per_camera: int = SYNTH_OPTIONS["synth_images_per_camera"].default,
    height: int = NATIVE_SIZE[0],
    width: int = NATIVE_SIZE[1],
    seed: int = 0,
) -> Path:
    """Write synthetic images as files in an official layout; returns the data folder.

    The folder readers are tested on these files, so every layout's naming
    convention is reproduced exactly (cameras 1-based in file names).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; layouts: {', '.join(LAYOUTS)}")
    two_cams = layout in ("cuhk03-partial", "viper", "caviar")
    if two_cams:
        cameras = 2
    if layout == "viper":
        images_per_camera = 1
    if layout == "cuhk03-partial":
        images_per_camera = min(images_per_camera, 5)
    if layout == "caviar":
        images_per_camera = min(images_per_camera, 10)
    spec = SynthSpec(train_ids, test_ids, cameras, images_per_camera, height, width, seed)
    train, test = generate(spec)
    out = Path(out_dir)
    rng = _rng(seed, 4)

    def save(path: Path, rgb: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
            raise OSError(f"could not write {path}")

    # Global ids: train ids first, then test ids; 1-based as in the real releases.
    def gid(split: SynthImages, i: int, base: int) -> int:
        return int(split.pids[i]) + base + 1

    root: Path
    if layout in ("market1501", "dukemtmc", "cuhk03"):
        root = {
            "market1501": out / "Market-1501-v15.09.15",
            "dukemtmc": out / "DukeMTMC-reID",
            "cuhk03": out / "cuhk03-np" / "labeled",
        }[layout]
        ext = ".png" if layout == "cuhk03" else ".jpg"
        frame = 0
        for split, base, is_train in ((train, 0, True), (test, train_ids, False)):
            for i in range(len(split.pids)):
                frame += 1
                pid, cam = gid(split, i, base), int(split.camids[i]) + 1
                folder = (
                    "bounding_box_train"
                    if is_train
                    else ("query" if split.shots[i] == 0 else "bounding_box_test")
                )
                if layout == "dukemtmc":
                    name = f"{pid:04d}_c{cam}_f{frame:07d}.jpg"
                else:
                    name = f"{pid:04d}_c{cam}s1_{frame:06d}_01{ext}"
                save(root / folder / name, split.images[i])
    elif layout == "cuhk03-partial":
        root = out / "cuhk03-labeled"
        for split, folder in ((train, "train"), (test, "val")):
            for i in range(len(split.pids)):
                kk = int(split.camids[i]) * 5 + int(split.shots[i])
                save(root / folder / f"{int(split.pids[i]):04d}_{kk:02d}.jpg", split.images[i])
    elif layout == "viper":
        root = out / "VIPeR"
        for split, base in ((train, 0), (test, train_ids)):
            for i in range(len(split.pids)):
                cam = "cam_a" if split.camids[i] == 0 else "cam_b"
                angle = int(rng.choice([0, 45, 90, 135, 180]))
                name = f"{int(split.pids[i]) + base:03d}_{angle}.bmp"
                save(root / cam / name, split.images[i])
    else:  # caviar: camera 2 is genuinely LR; a quarter of train ids only in camera 1
        root = out / "CAVIAR4REID" / "caviarReID"
        for split, base, is_train in ((train, 0, True), (test, train_ids, False)):
            for i in range(len(split.pids)):
                pid, cam = gid(split, i, base), int(split.camids[i])
                if cam == 1 and is_train and split.pids[i] % 4 == 3:
                    continue
                image = split.images[i]
                if cam == 1:
                    ratio = float(rng.uniform(2.0, 4.0))
                    size = (max(4, round(width / ratio)), max(8, round(height / ratio)))
                    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                index = cam * 10 + int(split.shots[i]) + 1
                save(root / f"{pid:04d}{index:03d}.jpg", image)
    readme = out / "README.txt"
    readme.parent.mkdir(parents=True, exist_ok=True)
    readme.write_text(
        "SYNTHETIC DATA: procedurally drawn pedestrians written by crossres-harness\n"
        f"(plugins.data.synthetic.write_layout) in the {layout!r} layout; no real person appears.\n"
        f"train_ids={train_ids} test_ids={test_ids} cameras={cameras} "
        f"images_per_camera={images_per_camera} size={height}x{width} seed={seed}\n"
    )
    return root


# ---------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------


@hookimpl
def harness_register_datasets(registry) -> None:
    # ``harness data synth`` finds the layout writer on the registered entry
    # (``DatasetEntry.write_layout``), so the core never imports this module by name.
    registry.add(
        "synthetic",
        synthetic_dataset,
        "procedural pedestrians (no download): id groups differing only in fine detail, "
        "cameras with own background, lighting and viewpoint",
        options=SYNTH_OPTIONS,
        write_layout=write_layout,
    )
