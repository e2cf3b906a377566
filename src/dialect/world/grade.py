"""The grader: read a ShapeWorld scene back from pixels, compare scenes, check prompt constraints.

`parse_image` works on any uint8 (H, W, 3) image, clean or generated:
1. smooth lightly (Gaussian, sigma 0.7 px at 64 px) to tame pixel noise;
2. background = median of a 2-pixel border ring (objects never touch the border);
3. unmix every pixel as background + alpha * (palette colour - background) for each palette colour;
   the colour with the smallest residual wins, and the pixel is foreground if alpha >= 0.5 and the
   residual is under half the colour's distance from the background (blurred edges stay with their
   own colour instead of turning into a neighbouring one);
4. connected components of the foreground (4-connectivity) are candidate objects;
5. each candidate is accepted only if it is big enough, one colour dominates its core pixels
   (>= 70 %), its size is plausible, and one shape's template fits it (soft IoU >= MIN_FIT). The
   template is the renderer's own inside test, sized and placed from the blob's alpha mass and
   centroid (both survive blur), blurred like the image; the shape with the least squared error
   wins. Position = the fitted box centre; size = the nearer (log scale) of the two radii;
6. pixels far from the background that no accepted object explains are "junk"; if they cover more
   than MAX_JUNK of the image (smeared colour, a failed generation) the image is garbage.
Pure noise gives no accepted component, garbage gives too much junk: either way `valid = False`
and no objects.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import ndimage

from dialect.core.errors import DialectError
from dialect.world.prompts import Constraints, ObjSpec, Prompt
from dialect.world.render import AREA, CENTROID_V, coverage
from dialect.world.scene import PALETTE, Obj, Scene, WorldConfig

MIN_FIT = 0.7  # least soft IoU between a blob's alpha and its best shape template
MIN_AGREEMENT = 0.7  # least fraction of a blob's core pixels voting for its colour
JUNK_DISTANCE = 48.0  # a pixel this far (RGB, 0-255) from the background is 'drawn'
MAX_JUNK = 0.08  # more drawn pixels than this fraction of the image outside accepted objects: garbage
MIN_AREA_FRACTION = 0.35  # least blob area, as a fraction of the smallest shape's expected area


@dataclass(frozen=True)
class ParsedScene:
    """What the grader read. `objects` are ordinary Obj (x, y = box centres in [0, 1]).

    valid: at least one object was accepted. rejected: blobs big enough to matter that failed a
    check (wrong shape, mixed colour, implausible size). junk: fraction of the image that is drawn
    (far from the background) but belongs to no accepted object; above MAX_JUNK the image is
    garbage and every object is dropped. details: per accepted object {radius, fit, agreement, area}.
    """

    objects: tuple[Obj, ...]
    valid: bool
    background: tuple[int, int, int]
    rejected: int = 0
    junk: float = 0.0
    details: tuple[dict[str, float], ...] = field(default=(), compare=False)

    def to_scene(self) -> Scene:
        """The parsed objects as a Scene (background = the estimated one)."""
        return Scene(self.objects, self.background)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {
            **self.to_scene().to_dict(),
            "valid": self.valid,
            "rejected": self.rejected,
            "junk": self.junk,
        }


def _check_image(img: np.ndarray) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        got = getattr(img, "shape", type(img).__name__), getattr(img, "dtype", "")
        raise DialectError(f"the grader needs a uint8 image shaped (H, W, 3), got {got}")
    if min(img.shape[:2]) < 16:
        raise DialectError(f"the grader needs images of at least 16x16 pixels, got {img.shape[:2]}")
    return img


def _unmix(sm: np.ndarray, bg: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: best colour index (H, W), alpha of every colour (H, W, K), foreground mask (H, W).

    Pixel = bg + alpha_k * (palette_k - bg) + residual_k; the best colour has the least residual.
    """
    d = sm - bg  # (H, W, 3)
    D = palette - bg  # (K, 3)
    norm2 = np.maximum((D * D).sum(1), 1.0)  # (K,)
    proj = d @ D.T  # (H, W, K)
    alpha = proj / norm2
    resid = np.sqrt(np.maximum((d * d).sum(-1, keepdims=True) - proj * alpha, 0.0))  # (H, W, K)
    resid = np.where(alpha > 0.25, resid, np.inf)
    k = resid.argmin(-1)
    a = np.take_along_axis(alpha, k[..., None], -1)[..., 0]
    res = np.take_along_axis(resid, k[..., None], -1)[..., 0]
    fg = (a >= 0.5) & (res < 0.5 * np.sqrt(norm2)[k])
    return k, alpha, fg


@lru_cache(maxsize=256)
def _blur_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix applying a 1-D Gaussian blur of `sigma` px with zero padding (as mode='constant')."""
    radius = int(4 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    idx = np.arange(n)
    off = idx[None, :] - idx[:, None]  # column minus row
    return np.where(np.abs(off) <= radius, k[np.clip(off + radius, 0, 2 * radius)], 0.0).astype(np.float32)


def _fit_shape(
    alpha: np.ndarray, region: np.ndarray, shapes: list[str], sigmas: tuple[float, ...]
) -> tuple[str, float, float, float, float]:
    """Best shape for a blob: (shape, IoU, cx, cy, r), lengths in pixels of the blob's window.

    alpha (h, w): how much of the blob's colour each pixel holds; region (h, w): the pixels that
    belong to the blob (it, dilated, minus other blobs). Blur preserves mass and centroid, so for
    each shape the box half-side r follows from the mass (= AREA[shape] * r^2) and the box centre
    from the centroid (shifted by CENTROID_V[shape] * r). The shape whose blurred template (blur
    levels `sigmas`) is closest to alpha in squared error wins; its soft IoU with alpha,
    sum(min) / sum(max), is the fit score.
    """
    a = np.where(region, np.clip(alpha, 0.0, 1.2), 0.0)
    mass = float(a.sum())
    ys, xs = np.indices(a.shape)
    gx, gy = float((a * (xs + 0.5)).sum() / mass), float((a * (ys + 0.5)).sum() / mass)
    box = (0, a.shape[0], 0, a.shape[1])
    best, best_err = ("", 0.0, gx, gy, 0.0), np.inf
    for s in shapes:
        r = float(np.sqrt(mass / AREA[s]))
        cy = gy - CENTROID_V[s] * r
        cov = coverage(s, gx, cy, r, box, ss=4)
        for sigma in sigmas:
            t = _blur_matrix(a.shape[0], sigma) @ cov @ _blur_matrix(a.shape[1], sigma).T
            err = float((((t - a) * region) ** 2).sum())
            if err < best_err:
                a1 = np.minimum(a, 1.0)
                iou = float(np.minimum(a1, t).sum() / max(np.maximum(a1, t).sum(), 1e-6))
                best, best_err = (s, iou, gx, cy, r), err
    return best


def parse_image(img: np.ndarray, cfg: WorldConfig | None = None) -> ParsedScene:
    """uint8 image (H, W, 3) -> ParsedScene. Shapes, colours and radii come from cfg (default config)."""
    img = _check_image(img)
    cfg = cfg or WorldConfig()
    h, w = img.shape[:2]
    s = float(min(h, w))
    sigma = 0.7 * max(1.0, s / 64)
    sm = ndimage.gaussian_filter(img.astype(np.float32), sigma=(sigma, sigma, 0))
    ring = np.concatenate(
        [sm[:2].reshape(-1, 3), sm[-2:].reshape(-1, 3), sm[:, :2].reshape(-1, 3), sm[:, -2:].reshape(-1, 3)]
    )
    bg = np.median(ring, axis=0)
    palette = np.asarray([PALETTE[c] for c in cfg.colors], dtype=np.float32)
    kidx, alpha, fg = _unmix(sm, bg, palette)
    labels, _ = ndimage.label(fg)
    min_area = MIN_AREA_FRACTION * 2 * (cfg.radius_small * s) ** 2  # triangle/diamond: area = 2 r^2
    r_cut = np.sqrt(cfg.radius_small * cfg.radius_large)
    sigmas = (sigma, float(np.hypot(sigma, 1.0)))
    objects, details, rejected = [], [], 0
    explained = np.zeros(fg.shape, dtype=bool)
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        sl = (slice(max(sl[0].start - 3, 0), sl[0].stop + 3), slice(max(sl[1].start - 3, 0), sl[1].stop + 3))
        lab = labels[sl]
        m = lab == i
        area = int(m.sum())
        if area < min_area:
            continue  # speckle
        k, a = kidx[sl][m], alpha[sl][m, kidx[sl][m]]
        core = a >= 0.75 if (a >= 0.75).sum() >= min_area / 2 else np.ones_like(a, dtype=bool)
        votes = np.bincount(k[core], minlength=len(cfg.colors))
        agreement = float(votes.max() / core.sum())
        color = int(votes.argmax())
        region = ndimage.binary_dilation(m, iterations=2) & ((lab == 0) | m)
        shape, fit, cx, cy, r = _fit_shape(alpha[sl][..., color], region, cfg.shapes, sigmas)
        radius = r / s
        if (
            agreement < MIN_AGREEMENT
            or fit < MIN_FIT
            or not 0.55 * cfg.radius_small <= radius <= 1.6 * cfg.radius_large
        ):
            rejected += 1
            continue
        x, y = (sl[1].start + cx) / w, (sl[0].start + cy) / h
        size = "small" if radius < r_cut else "large"
        objects.append(Obj(shape, cfg.colors[color], size, round(x, 4), round(y, 4)))
        details.append(
            {"radius": round(radius, 4), "fit": round(fit, 4), "agreement": round(agreement, 4), "area": area}
        )
        explained[sl] |= region
    far = np.linalg.norm(sm - bg, axis=-1) > JUNK_DISTANCE
    junk = float((far & ~explained).mean())
    if junk > MAX_JUNK:  # garbage: most of what is drawn is not a ShapeWorld object
        rejected, objects, details = rejected + len(objects), [], []
    bg_t = tuple(int(v) for v in np.clip(np.rint(bg), 0, 255))
    return ParsedScene(tuple(objects), bool(objects), bg_t, rejected, round(junk, 4), tuple(details))  # type: ignore[arg-type]


def _as_scene(x: Scene | ParsedScene) -> Scene:
    return x.to_scene() if isinstance(x, ParsedScene) else x


def scene_equal(
    a: Scene | ParsedScene, b: Scene | ParsedScene, size: bool = True, position: bool = True
) -> bool:
    """Same multiset of objects, compared by (shape, color[, size][, column, row]); exact x, y are ignored."""

    def keys(sc: Scene) -> Counter:
        return Counter(
            (o.shape, o.color) + ((o.size,) if size else ()) + ((o.column, o.row) if position else ())
            for o in sc.objects
        )

    return keys(_as_scene(a)) == keys(_as_scene(b))


RELATIONS = ("left of", "right of", "above", "below")


def relation_holds(a: Obj, rel: str, b: Obj, margin: float = 0.05) -> bool:
    """Does `a rel b` hold, with centres at least `margin` (fraction of the canvas) apart on that axis?"""
    if rel == "left of":
        return a.x + margin <= b.x
    if rel == "right of":
        return a.x >= b.x + margin
    if rel == "above":
        return a.y + margin <= b.y
    if rel == "below":
        return a.y >= b.y + margin
    raise ValueError(f"unknown relation {rel!r}; known: {RELATIONS}")


def _spec_matches(o: Obj, spec: ObjSpec) -> bool:
    return o.shape == spec.shape and (spec.color is None or o.color == spec.color)


def satisfies(
    image_or_scene: np.ndarray | Scene | ParsedScene,
    constraints: Constraints | Prompt,
    cfg: WorldConfig | None = None,
    margin: float = 0.05,
) -> bool:
    """Does the image (uint8 (H, W, 3), parsed first) or scene meet every constraint?

    Each ObjSpec needs at least `count` matching objects (exactly `count` if `exact`); each
    RelSpec needs some pair of distinct matching objects in that relation (centres `margin` apart).
    An image the grader finds invalid (no objects) fails any non-empty constraint set.
    """
    cons = constraints.constraints if isinstance(constraints, Prompt) else constraints
    scene = image_or_scene
    if isinstance(scene, np.ndarray):
        scene = parse_image(scene, cfg)
    objs = _as_scene(scene).objects
    matches = [[o for o in objs if _spec_matches(o, spec)] for spec in cons.objects]
    for spec, found in zip(cons.objects, matches, strict=True):
        if len(found) < spec.count or (spec.exact and len(found) != spec.count):
            return False
    for rel in cons.relations:
        pairs = ((a, b) for a in matches[rel.a] for b in matches[rel.b] if a is not b)
        if not any(relation_holds(a, rel.relation, b, margin) for a, b in pairs):
            return False
    return True


ATTRIBUTES = ("shape", "color", "size", "position")


def match_objects(truth: Scene, parsed: Scene, max_dist: float = 0.1) -> list[tuple[Obj, Obj | None]]:
    """Pair each true object with the nearest unused parsed object (greedy by centre distance, at most
    `max_dist` apart); unmatched true objects get None."""
    cands = sorted(
        (np.hypot(t.x - p.x, t.y - p.y), i, j)
        for i, t in enumerate(truth.objects)
        for j, p in enumerate(parsed.objects)
    )
    pair: dict[int, int] = {}
    used: set[int] = set()
    for dist, i, j in cands:
        if dist <= max_dist and i not in pair and j not in used:
            pair[i] = j
            used.add(j)
    return [(t, parsed.objects[pair[i]] if i in pair else None) for i, t in enumerate(truth.objects)]


def recovery(truths: list[Scene], parsed: list[Scene | ParsedScene]) -> dict[str, float]:
    """Recovery accuracy of a grader run, all in [0, 1]:
    shape / color / size / position: fraction of true objects whose matched parsed object has the
    right attribute (position = same 3x3 bucket; unmatched counts as wrong); objects: all four right;
    count: fraction of images with the right number of objects; exact: fraction with scene_equal;
    spurious: parsed objects matched to nothing, per image."""
    hits = Counter()
    n_obj = count_ok = exact = spurious = 0
    for truth, got in zip(truths, parsed, strict=True):
        got = _as_scene(got)
        pairs = match_objects(truth, got)
        n_obj += len(pairs)
        for t, p in pairs:
            if p is None:
                continue
            ok = {
                "shape": t.shape == p.shape,
                "color": t.color == p.color,
                "size": t.size == p.size,
                "position": (t.column, t.row) == (p.column, p.row),
            }
            hits.update(k for k, v in ok.items() if v)
            hits["objects"] += all(ok.values())
        count_ok += len(truth.objects) == len(got.objects)
        exact += scene_equal(truth, got)
        spurious += len(got.objects) - sum(p is not None for _, p in pairs)
    n_img = max(len(truths), 1)
    out = {k: hits[k] / max(n_obj, 1) for k in (*ATTRIBUTES, "objects")}
    out.update(count=count_ok / n_img, exact=exact / n_img, spurious=spurious / n_img)
    return out
