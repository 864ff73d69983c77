"""Geometries in space (× time): membership, interior and boundary sampling, outward normals, distances.

A geometry has named coordinates (``names``), a bounding box (``lower``, ``upper``) and optionally a time
coordinate. Shapes: :class:`~sciml.problems.pde.Box` (with :func:`Interval` for one dimension),
:class:`Ball` (a disk in 2-D), :class:`Polygon` (e.g. :func:`LShape`), the set operations
:class:`Union`, :class:`Intersection`, :class:`Difference` (also ``a | b``, ``a & b``, ``a - b``), and
:class:`SpaceTime` (``shape.times(0, 1)``).

Every geometry provides

- ``inside(x)``: a boolean mask of the rows of ``x`` in the closed set (boundary included);
- ``sample(n, generator, method=...)``: interior points, uniform (``"uniform"``, rejection from the
  bounding box) or low-discrepancy (``"sobol"``, ``"halton"`` via :mod:`scipy.stats.qmc`);
- ``sample_boundary(n, generator, on=...)``: points uniformly distributed on the (spatial) boundary or on
  a part of it, ``on`` being a part name (``parts()``: box faces ``"x-"``, polygon edges ``"edge0"``, …),
  several names, or a predicate ``on(x) -> bool mask``;
- ``normal(x, on=None)``: the outward unit normal at boundary points ``(n, ndim)`` (zero in time);
- ``distance(x, on=None)``: a smooth distance-like function, positive inside and zero exactly on the
  boundary (or on the named parts ``on``), normalised to first order (``|∇φ| = 1`` on the boundary). Hard
  constraints multiply the network by it. Edges and faces use the trimmed distance functions and
  R-equivalence of Sukumar & Srivastava, *Exact imposition of boundary conditions with distance functions
  in physics-informed deep neural networks*, CMAME 389 (2022), times a factor at each polygon vertex (not
  at a straight one, between collinear edges) that keeps the Laplacian bounded there (``|∇φ|`` then drops
  below 1 within a fifth of the shortest edge of a vertex); set operations use Rvachev's R-functions
  (``φ₁ + φ₂ ± √(φ₁² + φ₂²)``).
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = [
    "Ball",
    "Difference",
    "Disk",
    "Geometry",
    "Intersection",
    "Interval",
    "LShape",
    "Polygon",
    "Selector",
    "SpaceTime",
    "Union",
]

#: a boundary selector: ``None`` (all of it), a part name, several names, or a predicate on points
Selector = str | Sequence[str] | Callable[[torch.Tensor], torch.Tensor] | None

_METHODS = ("uniform", "sobol", "halton")
#: relative tolerance (of the bounding-box diameter) for membership and "on the boundary"
_TOL = 1e-7
#: the radius δ of the vertex smoothing of polygon distances, as a fraction of the shortest edge (chosen
#: on the L-shape, seed 1, 20 000 random validation points; hard constraint with the corner factor:
#: 0.1 → PINN 5.8e-4, PIG 1.2e-3; 0.2 → PINN 4.1e-4, PIG 6.0e-4)
_VERTEX_SMOOTHING = 0.2
#: the radius ρ of the cut-off of a re-entrant corner's factor, as a fraction of the distance from the
#: corner to the nearest edge not touching it (chosen likewise with δ = 0.1: PINN 0.25 → 2.1e-3,
#: 0.5 → 2.2e-3, 1 → 5.8e-4)
_CORNER_REACH = 1.0
#: rejection sampling gives up once ``_MIN_DRAWS`` candidates kept under ``_MIN_RATE`` of them (a region
#: with a fraction ``_MIN_RATE`` of its box keeps 20 ± 4.5 of them)
_MIN_DRAWS = 200_000
_MIN_RATE = 1e-4
#: the largest chunk of candidates drawn at once for a sparse region (twice the points still needed if more)
_MAX_CHUNK = 2**16
#: boundary points drawn (once, with a fixed seed) to estimate a set operation's boundary measure
_MEASURE_DRAWS = 2**16


def _device(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device:
    """The device to sample on: ``device``, else the generator's, else the CPU.

    Raises:
        ValueError: a generator on another device than ``device``.
    """
    if device is None:
        return generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"the generator lives on {generator.device} but points were requested on {device}; "
            f"create it with torch.Generator(device={str(device)!r})"
        )
    return device


class _EmptyPart(ValueError):
    """``sample_boundary`` found no point of the selected boundary part (a condition names itself)."""


def _is_real(v: object) -> bool:
    """A finite real number (Python or numpy scalar, not a bool)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _check_count(n: object) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"the number of points must be a positive integer, got {n!r}")
    return int(n)


def _check_names(names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(names)
    if not names or any(not isinstance(n, str) or len(n) != 1 or not n.isalpha() for n in names):
        raise ValueError(f"`names` must be single letters such as ('x', 'y'), got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"`names` must be distinct, got {names}")
    return names


def _cube(
    n: int, d: int, generator: torch.Generator | None, device: torch.device, method: str
) -> torch.Tensor:
    """``n`` points of ``[0, 1]^d`` in float64: torch's uniform stream or a scrambled scipy QMC sequence
    (its seed drawn from ``generator``, so runs stay reproducible and resumable)."""
    if method == "uniform":
        return torch.rand(n, d, generator=generator, dtype=torch.float64, device=device)
    if method not in _METHODS:
        raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}")
    from scipy.stats import qmc

    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=device))
    if method == "sobol":
        engine = qmc.Sobol(d, scramble=True, seed=seed)
        u = engine.random_base2(max(0, math.ceil(math.log2(n))))[:n]
    else:
        u = qmc.Halton(d, scramble=True, seed=seed).random(n)
    return torch.as_tensor(u, dtype=torch.float64, device=device)


def _r_and(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rvachev's R-conjunction: positive where both are, zero on the boundary of the intersection."""
    return a + b - torch.sqrt(a * a + b * b)


def _r_or(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rvachev's R-disjunction: positive where either is."""
    return a + b + torch.sqrt(a * a + b * b)


def _crossing_edges(v: np.ndarray) -> tuple[int, int] | None:
    """The first pair of non-adjacent edges of the closed polygon ``v`` that touch or cross, else None."""
    m = len(v)
    w = np.roll(v, -1, axis=0)

    def orient(p, q, r) -> float:
        return float((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]))

    def on_segment(p, q, r) -> bool:  # r on segment pq, given that the three are collinear
        return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])

    scale = float(np.abs(v).max()) or 1.0
    tol = 1e-12 * scale**2
    for i in range(m):
        for j in range(i + 2, m):
            if i == 0 and j == m - 1:  # adjacent through vertex 0
                continue
            a, b, c, d = v[i], w[i], v[j], w[j]
            o1, o2, o3, o4 = orient(a, b, c), orient(a, b, d), orient(c, d, a), orient(c, d, b)
            if o1 * o2 < -(tol**2) and o3 * o4 < -(tol**2):
                return i, j
            for o, p, q, r in ((o1, a, b, c), (o2, a, b, d), (o3, c, d, a), (o4, c, d, b)):
                if abs(o) <= tol and on_segment(p, q, r):
                    return i, j
    return None


def _r_equivalence(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """``1 / Σ 1/φᵢ``: zero where any ``φᵢ ≥ 0`` vanishes, ≈ the nearest ``φᵢ`` near it (m = 1).

    Computed as ``Π φᵢ / Σᵢ Π_{j≠i} φⱼ``, which never divides by a vanishing ``φᵢ``: the quotient form
    loses the second derivatives to rounding near an edge (0.5 % in float32 at 1e-5 from it).
    """
    parts = [p.clamp_min(0.0) for p in parts]
    if len(parts) == 1:
        return parts[0]
    others = [math.prod(p for j, p in enumerate(parts) if j != i) for i in range(len(parts))]
    tiny = torch.finfo(parts[0].dtype).tiny
    return math.prod(parts) / sum(others).clamp_min(tiny)


def _segment_distance(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(n, m)`` Euclidean distances from the points ``x`` to the segments from ``a[k]`` to ``b[k]``."""
    ab = b - a
    t = (((x[:, None, :] - a) * ab).sum(-1) / (ab * ab).sum(-1)).clamp(0, 1)
    return (x[:, None, :] - (a + t[..., None] * ab)).norm(dim=-1)


def _rejection(
    draw: Callable[[int], tuple[torch.Tensor, int]], n: int, fail: Callable[[int, int], Exception]
) -> torch.Tensor:
    """``n`` points from ``draw(m)`` (the points kept of about ``m`` candidates, and how many were drawn),
    in chunks sized by the fraction kept so far (twice the points still needed while over 60 % are kept).

    Raises:
        ``fail(kept, drawn)``: after ``_MIN_DRAWS`` candidates, under ``_MIN_RATE`` of them were kept.
    """
    chunks, have, drawn = [], 0, 0
    while have < n:
        rate = max(have, 1) / drawn if drawn else 1.0
        need = n - have
        m = max(64, 2 * need, min(math.ceil(1.2 * need / rate), _MAX_CHUNK))
        x, count = draw(m)
        drawn += count
        chunks.append(x)
        have += x.shape[0]
        if have < n and drawn >= _MIN_DRAWS and have < _MIN_RATE * drawn:
            raise fail(have, drawn)
    return torch.cat(chunks)[:n]


def _points_checked(method: Callable) -> Callable:
    """Wrap ``inside`` / ``on_boundary``: numpy arrays and integer tensors become float64 tensors, and the
    points must be ``(n, ndim)``."""

    @functools.wraps(method)
    def checked(self: Geometry, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        if not torch.is_tensor(x):
            x = torch.as_tensor(np.asarray(x, dtype=float))
        elif not x.is_floating_point():
            x = x.double()
        if x.ndim != 2 or x.shape[1] != self.ndim:
            raise ValueError(
                f"points must be an array of shape (n, {self.ndim}) with columns {self.names}, got shape "
                f"{tuple(x.shape)}"
            )
        return method(self, x)

    return checked


class Geometry:
    """Base class: a closed region with named coordinates and a bounding box (see the module docstring).

    Subclasses set ``names``, ``lower``, ``upper`` and ``time`` and implement :meth:`inside`,
    :meth:`level`, :meth:`_boundary_candidates`, :meth:`normal` and :meth:`boundary_measure`. Their
    ``inside`` and ``on_boundary`` accept numpy arrays and check the points' shape (see ``_points_checked``).
    """

    names: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    time: str | None = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("inside", "on_boundary"):
            if name in cls.__dict__:
                setattr(cls, name, _points_checked(cls.__dict__[name]))

    # ----------------------------------------------------------------- structure
    @property
    def ndim(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Column of coordinate ``name``.

        Raises:
            ValueError: ``name`` is not a coordinate of this geometry.
        """
        if name not in self.names:
            raise ValueError(f"unknown coordinate {name!r}; this domain has {self.names}")
        return self.names.index(name)

    @property
    def time_index(self) -> int | None:
        return None if self.time is None else self.names.index(self.time)

    @property
    def space_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if n != self.time)

    @property
    def diameter(self) -> float:
        """Diameter of the bounding box (the scale of tolerances)."""
        return math.dist(self.lower, self.upper)

    def parts(self) -> tuple[str, ...]:
        """Names of the boundary parts a condition can select with ``on=`` (a predicate always works)."""
        return ("boundary",)

    def times(self, t0: float, t1: float, name: str = "t") -> Geometry:
        """This spatial geometry × the time interval ``[t0, t1]`` (coordinate ``name``)."""
        return SpaceTime(self, t0, t1, name)

    def __or__(self, other: Geometry) -> Geometry:
        return Union(self, other)

    def __and__(self, other: Geometry) -> Geometry:
        return Intersection(self, other)

    def __sub__(self, other: Geometry) -> Geometry:
        return Difference(self, other)

    # ----------------------------------------------------------------- to implement
    def inside(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean mask ``(n,)``: rows of ``x`` in the closed region (tolerance ~1e-7 of the diameter)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def level(self, x: torch.Tensor) -> torch.Tensor:
        """A signed distance-like function ``(n,)``: > 0 inside, 0 on the boundary, < 0 outside."""
        raise NotImplementedError  # pragma: no cover - abstract

    def normal(self, x: torch.Tensor, on: Selector = None) -> torch.Tensor:
        """Outward unit normals ``(n, ndim)`` at boundary points ``x`` (of the part ``on`` if named)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def boundary_measure(self) -> float:
        """Length / area of the spatial boundary."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _boundary_candidates(
        self, n: int, generator: torch.Generator | None, device: torch.device
    ) -> torch.Tensor:
        """About ``n`` float64 points uniformly on a superset of the boundary (filtered by the caller)."""
        raise NotImplementedError  # pragma: no cover - abstract

    # ----------------------------------------------------------------- generic parts
    @_points_checked
    def on_boundary(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean mask: rows of ``x`` on the boundary, within 1e-7 of the diameter (a Euclidean distance
        for balls, boxes and polygons; ``|level|`` here)."""
        return self.level(x).abs() <= _TOL * self.diameter

    def contains(self, x: torch.Tensor | np.ndarray, tol: float = 1e-12) -> bool:
        """Whether every row of ``x`` (shape ``(n, ndim)``) lies in the region (up to the geometry's own
        tolerance of ~1e-7 of its diameter; ``tol`` is used by :class:`Box` only)."""
        x = torch.as_tensor(np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, float))
        return bool(x.ndim == 2 and x.shape[1] == self.ndim and self.inside(x).all())

    def _check_part(self, on: Selector) -> tuple[str, ...] | Callable | None:
        """``on`` as a tuple of part names, a predicate or None.

        Raises:
            ValueError: an unknown part name (the message lists the parts).
        """
        if on is None or callable(on):
            return on
        names = (on,) if isinstance(on, str) else tuple(on)
        if not names or any(p not in self.parts() for p in names):
            raise ValueError(
                f"unknown boundary part(s) {on!r}; the parts are {self.parts()} (or a predicate)"
            )
        return names

    def _part_mask(self, x: torch.Tensor, on: Selector) -> torch.Tensor:
        """Boolean mask of boundary points ``x`` that belong to the part ``on``."""
        on = self._check_part(on)
        if on is None or on == ("boundary",):
            return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        if callable(on):
            return self._predicate_mask(x, on)
        return self._named_mask(x, on)

    def _predicate_mask(self, x: torch.Tensor, on: Callable) -> torch.Tensor:
        """``on(x)``, checked: one argument, a boolean result of shape ``(n,)`` (numpy is converted).

        Raises:
            TypeError: a predicate of another signature (e.g. DeepXDE's ``(x, on_boundary)``), or a result
                that is not boolean.
            ValueError: a result of another shape.
        """
        usage = (
            f"a boundary predicate `on` takes one argument, the points (n, {self.ndim}) with columns "
            f"{self.names}, and returns a boolean tensor (n,), e.g. `lambda x: x[:, 0] > 0`"
        )
        try:
            inspect.signature(on).bind(x)
        except TypeError:
            raise TypeError(f"{usage}; got a predicate with the arguments {inspect.signature(on)}") from None
        except ValueError:  # no signature to inspect (some builtins): call it
            pass
        mask = on(x)
        if isinstance(mask, np.ndarray):
            mask = torch.as_tensor(mask, device=x.device)
        if not torch.is_tensor(mask) or mask.dtype != torch.bool:
            what = f"dtype {mask.dtype}" if torch.is_tensor(mask) else type(mask).__name__
            raise TypeError(
                f"{usage}; it returned {what}: return a comparison (`x[:, 1] > 0`, not `x[:, 1]`)"
            )
        if mask.shape != (x.shape[0],):
            raise ValueError(
                f"{usage}: one per row; it returned shape {tuple(mask.shape)} for {x.shape[0]} points"
            )
        return mask

    def _named_mask(self, x: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
        raise ValueError(f"{type(self).__name__} has no named boundary parts besides 'boundary'")

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        fixed: dict[int, float] | None = None,
        device: torch.device | str | None = None,
        method: str = "uniform",
    ) -> torch.Tensor:
        """``n`` points in the region, shape ``(n, ndim)``: uniform by rejection from the bounding box,
        or low-discrepancy (``method="sobol"`` / ``"halton"``, then kept if inside).

        Args:
            n: number of points (positive).
            generator: the random stream (reproducible training).
            dtype: floating dtype of the result.
            fixed: columns held at a value (e.g. ``{time_index: t0}``), applied after sampling.
            device: where the points are created (default: the generator's device, else the CPU).
            method: ``"uniform"``, ``"sobol"`` or ``"halton"``.

        Raises:
            ValueError: a bad ``n`` or ``method``, or a region too thin to hit (under 1e-4 of its box,
                judged after 2·10⁵ candidates), or empty.
        """
        n = _check_count(n)
        device = _device(generator, device)
        lo = torch.tensor(self.lower, dtype=torch.float64, device=device)
        width = torch.tensor(self.upper, dtype=torch.float64, device=device) - lo

        def draw(m: int) -> tuple[torch.Tensor, int]:
            x = lo + width * _cube(m, self.ndim, generator, device, method)
            return x[self.inside(x)], m

        def fail(kept: int, drawn: int) -> ValueError:
            if kept == 0:
                return ValueError(
                    f"no point of {drawn} drawn in the bounding box of {self!r} lies in it: the set is "
                    "empty, or covers under 1e-4 of its bounding box"
                )
            return ValueError(
                f"{self!r} covers under 1e-4 of its bounding box ({kept} of {drawn} points drawn in it lie "
                "inside): cannot sample it"
            )

        x = _rejection(draw, n, fail)
        for column, value in (fixed or {}).items():
            x[:, column] = value
        return x.to(dtype)

    def sample_boundary(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        on: Selector = None,
    ) -> torch.Tensor:
        """``n`` points uniformly on the boundary, or on its part ``on`` (see :meth:`normal` for normals).

        A boundary made of points (an interval's two ends, a box face in one dimension) gives each point
        once, whatever ``n`` is; a :class:`~sciml.problems.pde.Box` rounds its share of ``n`` per face
        (at least one point per face), so it may return a few points more or fewer.

        Raises:
            ValueError: a bad ``n``, an unknown part, a predicate that selects (almost) nothing (under 1e-4
                of the boundary), or an empty set.
        """
        n = _check_count(n)
        device = _device(generator, device)

        def draw(m: int) -> tuple[torch.Tensor, int]:
            x = self._boundary_candidates(m, generator, device)
            # candidates may come grouped (by face, by operand): shuffle so that truncating stays uniform
            count = x.shape[0]
            x = x[torch.randperm(count, generator=generator, device=device)]
            x = x[self.on_boundary(x)]
            return x[self._part_mask(x, on)], count

        def fail(kept: int, drawn: int) -> ValueError:
            if kept == 0 and (on is None or on == "boundary"):
                return ValueError(f"{self!r} has no boundary point: the set may be empty")
            what = "selected by the predicate `on`" if callable(on) else repr(on)
            return _EmptyPart(f"the boundary part {what} of {self!r} is empty or too small to sample")

        return _rejection(draw, n, fail).to(dtype)

    def sample_initial(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """``n`` points at the initial time.

        Raises:
            ValueError: the domain has no time coordinate.
        """
        if self.time is None:
            raise ValueError("this domain has no time coordinate, so it has no initial slice")
        fixed = {self.time_index: self.lower[self.time_index]}
        return self.sample(n, generator, dtype=dtype, fixed=fixed, device=device)

    def distance(self, x: torch.Tensor, on: Selector = None) -> torch.Tensor:
        """Distance-like factor ``(n,)``: positive inside, zero on the boundary (or the parts ``on``).

        Raises:
            ValueError: ``on`` is a predicate (no smooth distance to an arbitrary set) or unknown.
        """
        on = self._check_part(on)
        if callable(on):
            raise ValueError(
                "a distance to a predicate-selected boundary part is not defined; select parts by name "
                f"({self.parts()}) for a hard constraint"
            )
        if on is None or on == ("boundary",):
            return self.level(x)
        return self._part_distance(x, on)

    def _part_distance(self, x: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
        raise ValueError(f"{type(self).__name__} has no named boundary parts besides 'boundary'")

    def corner_factor(self, x: torch.Tensor, on: Selector = None) -> torch.Tensor | None:
        """A smooth factor ``(n,)`` for the re-entrant corners of the boundary (or of the parts ``on``),
        or ``None`` where there are none (the default: balls, boxes, convex polygons).

        No positive distance φ makes ``(u − g)/φ`` smooth at a re-entrant corner: a smooth ``u − g`` that
        vanishes on both edges is ``l_a l_b · h`` (``l`` the signed distances to the edges' lines), which
        changes sign inside the domain across the edges' extensions while φ does not. A hard constraint
        adds a second term ``ψ · N₂`` with this factor ``ψ = Σ_corners l_a l_b χ / δ`` (χ a cut-off around
        the corner), so that ``u = g + φ N₁ + ψ N₂`` represents any such ``u`` with smooth ``N₁``, ``N₂``.

        Raises:
            ValueError: ``on`` is a predicate or an unknown part.
        """
        on = self._check_part(on)
        if callable(on):
            raise ValueError(f"select boundary parts by name ({self.parts()}) for a corner factor")
        return None

    def axes(self, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
        """Evenly spaced points per coordinate over the bounding box, both bounds included.

        Raises:
            ValueError: ``shape`` does not have one entry ≥ 2 per coordinate.
        """
        shape = tuple(shape)
        if len(shape) != self.ndim or any(int(s) < 2 for s in shape):
            raise ValueError(f"`shape` needs {self.ndim} entries ≥ 2 (one per {self.names}), got {shape}")
        return tuple(np.linspace(lo, hi, int(s)) for lo, hi, s in zip(self.lower, self.upper, shape))


# --------------------------------------------------------------------------------------------- shapes
def _check_point(name: str, p: Sequence[float], d: int | None = None) -> tuple[float, ...]:
    p = tuple(float(v) for v in p)
    if not p or (d is not None and len(p) != d) or not all(math.isfinite(v) for v in p):
        raise ValueError(f"`{name}` must be {d or 'some'} finite numbers, got {p!r}")
    return p


class Ball(Geometry):
    """The closed ball ``|x − center| ≤ radius`` in any dimension (a disk in 2-D).

    Args:
        center: the centre, one number per coordinate.
        radius: positive.
        names: coordinate names (default ``x, y, z, w`` up to the dimension).

    Raises:
        ValueError: a non-positive radius, or names that do not match the centre.
    """

    def __init__(self, center: Sequence[float], radius: float, names: Sequence[str] | None = None) -> None:
        self.center = _check_point("center", center)
        d = len(self.center)
        if not (_is_real(radius) and radius > 0):
            raise ValueError(f"`radius` must be a positive number, got {radius!r}")
        self.radius = float(radius)
        self.names = _check_names(names if names is not None else "xyzw"[:d])
        if len(self.names) != d:
            raise ValueError(f"`names` needs {d} entries (one per centre coordinate), got {self.names}")
        self.lower = tuple(c - self.radius for c in self.center)
        self.upper = tuple(c + self.radius for c in self.center)

    def __repr__(self) -> str:
        return f"Ball(center={self.center}, radius={self.radius})"

    def _offset(self, x: torch.Tensor) -> torch.Tensor:
        return x - torch.tensor(self.center, dtype=x.dtype, device=x.device)

    def inside(self, x: torch.Tensor) -> torch.Tensor:
        return self._offset(x).norm(dim=1) <= self.radius * (1 + _TOL)

    def on_boundary(self, x: torch.Tensor) -> torch.Tensor:
        return (self._offset(x).norm(dim=1) - self.radius).abs() <= _TOL * self.diameter

    def level(self, x: torch.Tensor) -> torch.Tensor:
        r2 = (self._offset(x) ** 2).sum(dim=1)
        return (self.radius**2 - r2) / (2 * self.radius)

    def normal(self, x: torch.Tensor, on: Selector = None) -> torch.Tensor:
        v = self._offset(x)
        return v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)

    def boundary_measure(self) -> float:
        d = len(self.center)
        return 2 * math.pi ** (d / 2) / math.gamma(d / 2) * self.radius ** (d - 1)

    def _boundary_candidates(self, n, generator, device):
        z = torch.randn(n, len(self.center), generator=generator, dtype=torch.float64, device=device)
        z = z / z.norm(dim=1, keepdim=True)
        return torch.tensor(self.center, dtype=torch.float64, device=device) + self.radius * z


def Disk(
    center: Sequence[float] = (0.0, 0.0), radius: float = 1.0, names: Sequence[str] = ("x", "y")
) -> Ball:
    """The closed disk ``|x − center| ≤ radius`` (a 2-D :class:`Ball`)."""
    return Ball(_check_point("center", center, 2), radius, names)


class Polygon(Geometry):
    """A simple polygon (no self-intersections) given by its vertices in order (either orientation).

    Its edges are the boundary parts ``"edge0"`` (from vertex 0 to 1), ``"edge1"``, … A vertex between
    two collinear edges (an edge split in two; angle within 1e-7 of π) is no corner: :meth:`distance` and
    :meth:`corner_factor` treat the two edges as one segment.

    Args:
        vertices: ``(m, 2)`` with m ≥ 3.
        names: the two coordinate names.

    Raises:
        ValueError: fewer than 3 vertices, non-finite ones, an area under 1e-7 of the squared diameter
            (collinear or repeated vertices), or edges that cross.
    """

    def __init__(self, vertices: Sequence[Sequence[float]], names: Sequence[str] = ("x", "y")) -> None:
        v = np.asarray(vertices, dtype=float)
        if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3 or not np.isfinite(v).all():
            raise ValueError(f"`vertices` must be (m ≥ 3, 2) finite numbers, got shape {v.shape}")
        w = np.roll(v, -1, axis=0)
        c = v - v.mean(axis=0)  # centred: the area's rounding then scales with the size, not the position
        area = 0.5 * float(np.sum(c[:, 0] * np.roll(c[:, 1], -1) - np.roll(c[:, 0], -1) * c[:, 1]))
        if abs(area) <= _TOL * float(np.sum((v.max(axis=0) - v.min(axis=0)) ** 2)):
            crossing = _crossing_edges(v)  # a figure eight has zero signed area: say why
            if crossing is not None:
                raise ValueError(
                    f"`vertices` make a self-intersecting polygon (edges {crossing[0]} and {crossing[1]} "
                    "cross); list the vertices in order around the boundary"
                )
            raise ValueError(
                f"`vertices` enclose no area (collinear or repeated vertices): the area {abs(area):.3g} is "
                "under 1e-7 of the squared diameter"
            )
        self.vertices = v
        self.names = _check_names(names)
        if len(self.names) != 2:
            raise ValueError(f"a polygon has 2 coordinates, got names {self.names}")
        self.lower = tuple(float(c) for c in v.min(axis=0))
        self.upper = tuple(float(c) for c in v.max(axis=0))
        self._a, self._b = v, w  # edge k from _a[k] to _b[k], in the user's order
        self._ccw = area > 0
        self._lengths = np.linalg.norm(w - v, axis=1)
        if np.any(self._lengths == 0):
            raise ValueError("`vertices` has repeated consecutive points")
        crossing = _crossing_edges(v)
        if crossing is not None:
            raise ValueError(
                f"`vertices` make a self-intersecting polygon (edges {crossing[0]} and {crossing[1]} cross); "
                "list the vertices in order around the boundary"
            )
        d_in, d_out = v - np.roll(v, 1, axis=0), w - v  # the edges k − 1 and k at vertex k
        cross = d_in[:, 0] * d_out[:, 1] - d_in[:, 1] * d_out[:, 0]
        bound = _TOL * np.roll(self._lengths, 1) * self._lengths
        self._straight = (np.abs(cross) <= bound) & (np.sum(d_in * d_out, axis=1) > 0)
        first, last = zip(*self._runs(range(len(v))))
        shortest = np.linalg.norm(w[list(last)] - v[list(first)], axis=1).min()
        self._delta = _VERTEX_SMOOTHING * float(shortest)  # of the vertex smoothing (see _smoothed)

    def __repr__(self) -> str:
        return f"Polygon({self.vertices.tolist()})"

    def parts(self) -> tuple[str, ...]:
        return ("boundary", *(f"edge{k}" for k in range(len(self.vertices))))

    def _edges(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.as_tensor(self._a, dtype=x.dtype, device=x.device)
        b = torch.as_tensor(self._b, dtype=x.dtype, device=x.device)
        return a, b

    def _segment_distance(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, m)`` Euclidean distances from the points to each edge."""
        return _segment_distance(x, *self._edges(x))

    def _runs(self, edges: Sequence[int]) -> list[tuple[int, int]]:
        """The edges ``edges`` as straight runs ``(first, last)`` in order: consecutive edges meeting at a
        straight vertex make one run."""
        m, selected = len(self.vertices), set(edges)
        runs = []
        for first in sorted(selected):
            if (first - 1) % m in selected and self._straight[first]:
                continue  # inside a run
            last = first
            while (last + 1) % m in selected and self._straight[(last + 1) % m]:
                last = (last + 1) % m
            runs.append((first, last))
        return runs

    def _run_segments(
        self, runs: list[tuple[int, int]], x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The runs' segments: starts and ends ``(len(runs), 2)`` in ``x``'s dtype and device."""
        a = torch.as_tensor(self._a[[first for first, _ in runs]], dtype=x.dtype, device=x.device)
        b = torch.as_tensor(self._b[[last for _, last in runs]], dtype=x.dtype, device=x.device)
        return a, b

    def _joins(self, runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Pairs ``(i, j)``: run ``i`` ends at the vertex where run ``j`` starts (a corner)."""
        m = len(self.vertices)
        ending = {last: i for i, (_, last) in enumerate(runs)}
        return [
            (ending[(first - 1) % m], j) for j, (first, _) in enumerate(runs) if (first - 1) % m in ending
        ]

    def inside(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self._edges(x)
        px, py = x[:, :1], x[:, 1:2]
        crosses = (a[:, 1] > py) != (b[:, 1] > py)
        xint = a[:, 0] + (py - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1]).where(
            b[:, 1] != a[:, 1], torch.ones_like(a[:, 1])
        )
        odd = ((crosses & (px < xint)).sum(dim=1) % 2) == 1
        return odd | self.on_boundary(x)

    def on_boundary(self, x: torch.Tensor) -> torch.Tensor:
        return self._segment_distance(x).min(dim=1).values <= _TOL * self.diameter

    def _trimmed(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``(n, k)`` smooth trimmed distances to the segments from ``a`` to ``b`` (Sukumar & Srivastava
        2022, eq. 8).

        Only the selected segments are computed, and the square roots are taken of values clamped to the
        dtype's ``tiny``: the derivative of ``√v`` at ``v = 0`` is infinite, so a segment's distance at a
        point on that segment would put 0 · ∞ = NaN into any gradient through it (a Neumann condition on an
        edge beside hard Dirichlet edges did, even though that edge's column is not used).
        """
        ab = b - a
        length = ab.norm(dim=1)
        f = ((x[..., None, 0] - a[:, 0]) * ab[:, 1] - (x[..., None, 1] - a[:, 1]) * ab[:, 0]) / length
        centre = (a + b) / 2
        t = ((length / 2) ** 2 - ((x[:, None, :] - centre) ** 2).sum(-1)) / length
        tiny = torch.finfo(x.dtype).tiny
        beta = (torch.sqrt((t**2 + f**4).clamp_min(tiny)) - t) / 2
        return torch.sqrt((f**2 + beta**2).clamp_min(tiny))

    def _smoothed(self, phi: torch.Tensor, joins: list[tuple[int, int]]) -> torch.Tensor:
        """R-equivalence of the columns of ``phi`` (one per run) with its vertex singularities removed.

        Near a vertex where runs ``a`` and ``b`` meet, ``1/Σ 1/φᵢ ≈ φₐφ_b/(φₐ + φ_b)`` is homogeneous of
        degree 1, so its Laplacian grows like ``1/r`` (a PINN residual then blows up at corners). Each
        vertex whose two runs are both selected (``joins``) multiplies it by ``s/(s⁴ + δ⁴)^¼`` with
        ``s = φₐ + φ_b``, which turns it into ``≈ φₐφ_b/δ`` within ``δ`` (``_VERTEX_SMOOTHING`` × the
        shortest run) of the vertex: the Laplacian stays bounded (``O(1/δ)``; measured on the unit L-shape:
        ≤ 20 at any distance from the vertices, against ≈ 2/r without the factor), the zero set is
        unchanged, and farther than ``δ`` from the vertices the function is the R-equivalence (``|∇φ| = 1``
        on the edges) up to ``O(δ⁴/s⁴)``. A straight vertex (collinear edges, one run) gets no factor: there
        ``u − g`` vanishes only to first order. At a re-entrant corner ``(u − g)/φ`` stays non-smooth for a
        smooth ``u`` (``u − g`` changes sign across the edges' extensions, ``φ`` does not), which no ``φ``
        can remove: hard constraints add :meth:`corner_factor` there.
        """
        value = _r_equivalence([phi[:, j] for j in range(phi.shape[1])])
        for i, j in joins:  # run i ends where run j starts
            s = phi[:, j] + phi[:, i]
            value = value * s / (s**4 + self._delta**4) ** 0.25
        return value

    def _distance(self, x: torch.Tensor, edges: Sequence[int]) -> torch.Tensor:
        """The smoothed distance to the edges ``edges`` (merged into straight runs)."""
        runs = self._runs(edges)
        return self._smoothed(self._trimmed(x, *self._run_segments(runs, x)), self._joins(runs))

    def level(self, x: torch.Tensor) -> torch.Tensor:
        value = self._distance(x, range(len(self.vertices)))
        inside = self.inside(x) & ~self.on_boundary(x)
        return torch.where(inside | (value == 0), value, -value)

    def reentrant_vertices(self) -> list[int]:
        """Indices ``k`` of the vertices with an interior angle above π (vertex k joins edges k − 1, k)."""
        v, m = self.vertices, len(self.vertices)
        out = []
        for k in range(m):
            d_in, d_out = v[k] - v[(k - 1) % m], v[(k + 1) % m] - v[k]
            turn = d_in[0] * d_out[1] - d_in[1] * d_out[0]  # > 0: a left turn
            if not self._straight[k] and ((turn < 0) if self._ccw else (turn > 0)):
                out.append(k)
        return out

    def corner_factor(self, x: torch.Tensor, on: Selector = None) -> torch.Tensor | None:
        """``Σ_k l_a l_b χ(|x − v_k|/ρ_k) / δ`` over the re-entrant vertices ``v_k`` whose two edges are
        both selected (see :meth:`Geometry.corner_factor`), ``None`` if there are none.

        ``l_a``, ``l_b`` are the signed distances to the lines of the two edges (a polynomial, zero on
        both edges), ``χ(s) = (1 − s⁴)³`` for ``s < 1`` and 0 beyond (C², equal to 1 − O(s⁴) at the
        vertex), ``ρ_k`` the distance from ``v_k`` to the nearest edge not touching it (edges across a
        straight vertex count as one; times ``_CORNER_REACH`` ≤ 1: the factor vanishes on every other
        edge), and ``δ`` the vertex-smoothing radius of :meth:`distance`, which makes ``ψ ≈ φ`` in scale
        near the vertex.
        """
        names = self._check_part(on)
        if callable(names):
            raise ValueError(f"select boundary parts by name ({self.parts()}) for a corner factor")
        m = len(self.vertices)
        runs = self._runs(range(m) if names is None else self._named_indices(names))
        reentrant = set(self.reentrant_vertices())
        corners = [(i, j) for i, j in self._joins(runs) if runs[j][0] in reentrant]
        if not corners:
            return None
        a, b = self._run_segments(runs, x)
        ab = b - a
        inward = torch.stack([-ab[:, 1], ab[:, 0]], dim=1) / ab.norm(dim=1, keepdim=True)
        if not self._ccw:
            inward = -inward
        every = self._runs(range(m))
        every_a, every_b = self._run_segments(every, x)
        total = torch.zeros_like(x[:, 0])
        for i, j in corners:  # run i ends at the corner k where run j starts
            k = runs[j][0]
            vk = torch.as_tensor(self.vertices[k], dtype=x.dtype, device=x.device)
            far = [r for r, (first, last) in enumerate(every) if k not in (first, (last + 1) % m)]
            reach = _segment_distance(vk[None, :], every_a[far], every_b[far])[0].min()
            rho = _CORNER_REACH * float(reach)
            la = ((x - a[i]) * inward[i]).sum(dim=1)
            lb = ((x - a[j]) * inward[j]).sum(dim=1)
            s2 = ((x - vk) ** 2).sum(dim=1) / rho**2
            chi = (1 - s2.clamp(max=1.0) ** 2) ** 3
            total = total + la * lb * chi / self._delta
        return total

    def _named_indices(self, names: tuple[str, ...]) -> list[int]:
        return list(range(len(self.vertices))) if "boundary" in names else [int(p[4:]) for p in names]

    def _named_mask(self, x, names):
        dist = self._segment_distance(x)
        nearest = dist.argmin(dim=1)
        keep = torch.tensor(self._named_indices(names), device=x.device)
        return torch.isin(nearest, keep)

    def _part_distance(self, x, names):
        return self._distance(x, self._named_indices(names))

    def normal(self, x: torch.Tensor, on: Selector = None) -> torch.Tensor:
        a, b = self._edges(x)
        ab = b - a
        outward = torch.stack([ab[:, 1], -ab[:, 0]], dim=1) / ab.norm(dim=1, keepdim=True)
        if not self._ccw:
            outward = -outward
        dist = self._segment_distance(x)
        if isinstance(on, (str, tuple, list)) and "boundary" not in ((on,) if isinstance(on, str) else on):
            names = self._check_part(on)
            mask = torch.full_like(dist, math.inf)
            mask[:, self._named_indices(names)] = 0
            dist = dist + mask
        return outward[dist.argmin(dim=1)]

    def boundary_measure(self) -> float:
        return float(self._lengths.sum())

    def _boundary_candidates(self, n, generator, device):
        p = torch.as_tensor(self._lengths / self._lengths.sum(), device=device)
        k = torch.multinomial(p, n, replacement=True, generator=generator)
        s = torch.rand(n, 1, generator=generator, dtype=torch.float64, device=device)
        a = torch.as_tensor(self._a, device=device)[k]
        b = torch.as_tensor(self._b, device=device)[k]
        return a + s * (b - a)


def LShape(size: float = 1.0, names: Sequence[str] = ("x", "y")) -> Polygon:
    """The L-shaped domain ``[−s, s]² \\ (0, s]×(0, s]`` (s = ``size``) as a :class:`Polygon`."""
    s = float(size)
    return Polygon([(-s, -s), (s, -s), (s, 0.0), (0.0, 0.0), (0.0, s), (-s, s)], names)


def Interval(lower: float, upper: float, name: str = "x"):
    """The interval ``[lower, upper]`` as a one-coordinate :class:`~sciml.problems.pde.Box`
    (faces ``"x-"`` and ``"x+"``).

    Raises:
        ValueError: a bound that is a string or a bool (e.g. the name first, ``Interval("x", 0, 1)``), or the
            Box's own errors (``lower >= upper``, a name that is not a single letter).
    """
    from sciml.problems.pde.domain import Box

    if any(isinstance(b, (str, bool)) for b in (lower, upper)):
        raise ValueError(
            f"Interval takes the bounds first, then the name: Interval(lower, upper, name='x'), e.g. "
            f"Interval(-1.0, 1.0, 'x'); got lower={lower!r}, upper={upper!r}, name={name!r}"
        )
    return Box((name,), (lower,), (upper,))


# --------------------------------------------------------------------------------------------- set operations
class _SetOperation(Geometry):
    def __init__(self, a: Geometry, b: Geometry) -> None:
        for g in (a, b):
            if not isinstance(g, Geometry) or g.time is not None:
                raise ValueError(
                    f"set operations take spatial geometries (add time afterwards with .times()), got {g!r}"
                )
        if a.names != b.names:
            raise ValueError(f"set operations need the same coordinates, got {a.names} and {b.names}")
        self.a, self.b, self.names = a, b, a.names
        self.lower, self.upper = self._bounds()
        self._measure: float | None = None  # estimated on first use (boundary_measure)

    def _bounds(self):
        lo = tuple(min(p, q) for p, q in zip(self.a.lower, self.b.lower))
        hi = tuple(max(p, q) for p, q in zip(self.a.upper, self.b.upper))
        return lo, hi

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.a!r}, {self.b!r})"

    def boundary_measure(self) -> float:
        """Length / area of the boundary, estimated (once, with a fixed seed) as the operands' boundary
        measure times the fraction ``p`` of ``_MEASURE_DRAWS`` of their boundary points on this boundary
        (relative standard error ``√((1 − p)/(p · 2¹⁶))``, 0.3 % for p = 2/3): what splits points between
        the operands of an enclosing set operation."""
        if self._measure is None:
            x = self._boundary_candidates(
                _MEASURE_DRAWS, torch.Generator().manual_seed(0), torch.device("cpu")
            )
            share = float(self.on_boundary(x).double().mean())
            self._measure = (self.a.boundary_measure() + self.b.boundary_measure()) * share
        return self._measure

    def _boundary_candidates(self, n, generator, device):
        ma, mb = self.a.boundary_measure(), self.b.boundary_measure()
        if ma + mb == 0:
            raise ValueError(f"{self!r} has no boundary point: the set may be empty")
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=device)
        na = int((u < ma / (ma + mb)).sum())
        parts = []
        if na:
            parts.append(self.a.sample_boundary(na, generator, dtype=torch.float64, device=device))
        if n - na:
            parts.append(self.b.sample_boundary(n - na, generator, dtype=torch.float64, device=device))
        return torch.cat(parts)

    def _strict(self, g: Geometry, x: torch.Tensor) -> torch.Tensor:
        """Strictly inside ``g`` (off its boundary)."""
        return g.inside(x) & ~g.on_boundary(x)

    def normal(self, x: torch.Tensor, on: Selector = None) -> torch.Tensor:
        on_a = self.a.level(x).abs() <= self.b.level(x).abs()
        na, nb = self.a.normal(x), self.b.normal(x)
        if isinstance(self, Difference):
            nb = -nb
        return torch.where(on_a[:, None], na, nb)


class Union(_SetOperation):
    """``a ∪ b`` (also ``a | b``)."""

    def inside(self, x):
        return self.a.inside(x) | self.b.inside(x)

    def level(self, x):
        return _r_or(self.a.level(x), self.b.level(x))

    def on_boundary(self, x):
        return (self.a.on_boundary(x) & ~self._strict(self.b, x)) | (
            self.b.on_boundary(x) & ~self._strict(self.a, x)
        )


class Intersection(_SetOperation):
    """``a ∩ b`` (also ``a & b``)."""

    def _bounds(self):
        lo = tuple(max(p, q) for p, q in zip(self.a.lower, self.b.lower))
        hi = tuple(min(p, q) for p, q in zip(self.a.upper, self.b.upper))
        if any(h <= low for low, h in zip(lo, hi)):
            raise ValueError(f"the intersection of {self.a!r} and {self.b!r} is empty")
        return lo, hi

    def inside(self, x):
        return self.a.inside(x) & self.b.inside(x)

    def level(self, x):
        return _r_and(self.a.level(x), self.b.level(x))

    def on_boundary(self, x):
        return (self.a.on_boundary(x) & self.b.inside(x)) | (self.b.on_boundary(x) & self.a.inside(x))


class Difference(_SetOperation):
    """``a \\ b`` (also ``a - b``), closed: the part of ``b``'s boundary inside ``a`` belongs to it."""

    def _bounds(self):
        return self.a.lower, self.a.upper

    def inside(self, x):
        return self.a.inside(x) & ~self._strict(self.b, x)

    def level(self, x):
        return _r_and(self.a.level(x), -self.b.level(x))

    def on_boundary(self, x):
        return (self.a.on_boundary(x) & ~self._strict(self.b, x)) | (self.b.on_boundary(x) & self.a.inside(x))


# --------------------------------------------------------------------------------------------- space-time
class SpaceTime(Geometry):
    """``space × [t0, t1]``; the time coordinate comes last. Boundary parts are those of ``space`` (the
    lateral boundary); the initial slice is reached by ``sample_initial`` (initial conditions).

    Raises:
        ValueError: ``space`` already has time, ``t0 ≥ t1``, or ``name`` is taken.
    """

    def __init__(self, space: Geometry, t0: float, t1: float, name: str = "t") -> None:
        if not isinstance(space, Geometry) or space.time is not None:
            raise ValueError(f"`space` must be a spatial geometry, got {space!r}")
        if not (math.isfinite(t0) and math.isfinite(t1) and t0 < t1):
            raise ValueError(f"the time interval needs finite t0 < t1, got [{t0}, {t1}]")
        self.space = space
        self.names = _check_names((*space.names, name))
        self.time = name
        self.lower = (*space.lower, float(t0))
        self.upper = (*space.upper, float(t1))

    def __repr__(self) -> str:
        return f"SpaceTime({self.space!r}, {self.lower[-1]}, {self.upper[-1]})"

    def parts(self) -> tuple[str, ...]:
        return self.space.parts()

    @property
    def diameter(self) -> float:
        return self.space.diameter

    def inside(self, x):
        t = x[:, -1]
        span = self.upper[-1] - self.lower[-1]
        in_time = (t >= self.lower[-1] - _TOL * span) & (t <= self.upper[-1] + _TOL * span)
        return self.space.inside(x[:, :-1]) & in_time

    def level(self, x):
        return self.space.level(x[:, :-1])

    def on_boundary(self, x):
        return self.space.on_boundary(x[:, :-1])

    def _part_mask(self, x, on):
        if callable(on):
            return super()._part_mask(x, on)
        return self.space._part_mask(x[:, :-1], on)

    def _part_distance(self, x, names):
        return self.space._part_distance(x[:, :-1], names)

    def corner_factor(self, x, on=None):
        if callable(on):
            raise ValueError(f"select boundary parts by name ({self.parts()}) for a corner factor")
        return self.space.corner_factor(x[:, :-1], on)

    def normal(self, x, on=None):
        n = self.space.normal(x[:, :-1], on)
        return torch.cat([n, torch.zeros_like(n[:, :1])], dim=1)

    def boundary_measure(self) -> float:
        return self.space.boundary_measure() * (self.upper[-1] - self.lower[-1])

    def _boundary_candidates(self, n, generator, device):
        x = self.space.sample_boundary(n, generator, dtype=torch.float64, device=device)
        t = torch.rand(x.shape[0], 1, generator=generator, dtype=torch.float64, device=device)
        return torch.cat([x, self.lower[-1] + t * (self.upper[-1] - self.lower[-1])], dim=1)
