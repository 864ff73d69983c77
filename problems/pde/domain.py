"""Box domains in space (× time) and the points sampled on them.

A :class:`Box` is a product of intervals, one per named coordinate (single characters such as ``"x"``,
``"y"``, ``"t"``); one of them may be marked as time. Points are rows of a ``(n, ndim)`` tensor whose
columns follow ``names``. Sampling is uniform and driven by a ``torch.Generator`` so that training runs
are reproducible and resumable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from sciml.problems.pde.geometry import (
    _TOL,
    Geometry,
    Selector,
    _check_count,
    _cube,
    _device,
    _r_and,
    _r_equivalence,
)

__all__ = ["Box"]

_ = _device  # re-exported: conditions import it from here


@dataclass(frozen=True)
class Box(Geometry):
    """The box ``[lower_0, upper_0] × ... × [lower_{d-1}, upper_{d-1}]`` with named coordinates.

    Args:
        names: one single-character name per coordinate, e.g. ``("x", "y", "t")``.
        lower, upper: the bounds per coordinate.
        time: the name of the time coordinate, or ``None`` for a purely spatial domain.

    Raises:
        ValueError: names that are not distinct single characters, bounds of the wrong length or with
            ``lower >= upper``, or a ``time`` that is not one of ``names``; bounds without names (a call
            ``Box(lower, upper)``, or the names last), which the message shows in the order
            ``Box(names, lower, upper)``.
    """

    names: tuple[str, ...]
    # (the defaults only let a call without names, Box(lower, upper), get an error that shows the signature)
    lower: tuple[float, ...] = None  # type: ignore[assignment]
    upper: tuple[float, ...] = None  # type: ignore[assignment]
    time: str | None = None

    def __post_init__(self) -> None:
        def numbers(value) -> bool:  # bounds where the names belong
            try:
                return len(value) > 0 and all(
                    isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in value
                )
            except TypeError:
                return False

        if numbers(self.names):
            raise ValueError(
                "Box takes the coordinate names first, then the bounds: Box(names, lower, upper), e.g. "
                f"Box(('x', 'y'), (-1, -1), (1, 1)); got names={self.names!r}, lower={self.lower!r}, "
                f"upper={self.upper!r}"
            )
        if self.lower is None or self.upper is None:
            missing = " and ".join(b for b in ("lower", "upper") if getattr(self, b) is None)
            raise ValueError(
                f"Box needs both bounds: `{missing}` is missing; give Box({tuple(self.names)!r}, lower, "
                f"upper) one number per name in each; got lower={self.lower!r}, upper={self.upper!r}"
            )
        names = tuple(self.names)
        if not names or any(not isinstance(n, str) or len(n) != 1 or not n.isalpha() for n in names):
            raise ValueError(f"`names` must be single letters such as ('x', 't'), got {self.names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"`names` must be distinct, got {names}")
        lower = tuple(float(v) for v in self.lower)
        upper = tuple(float(v) for v in self.upper)
        if len(lower) != len(names) or len(upper) != len(names):
            raise ValueError(f"`lower` and `upper` need {len(names)} entries (one per name in {names})")
        if any(not (math.isfinite(lo) and math.isfinite(hi) and lo < hi) for lo, hi in zip(lower, upper)):
            raise ValueError(f"bounds must be finite with lower < upper, got lower={lower}, upper={upper}")
        if self.time is not None and self.time not in names:
            raise ValueError(f"`time` must be one of {names} or None, got {self.time!r}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)

    # ------------------------------------------------ structure: ndim, index, time_index... from Geometry
    def faces(self) -> tuple[str, ...]:
        """The spatial faces, named ``"x-"`` (at the lower bound of x) and ``"x+"`` (upper bound)."""
        return tuple(f"{n}{s}" for n in self.space_names for s in "-+")

    def parse_face(self, face: str) -> tuple[int, bool]:
        """``"x+"`` -> (column of x, True for the upper side).

        Raises:
            ValueError: not a spatial face of this box.
        """
        if (
            not isinstance(face, str)
            or len(face) != 2
            or face[1] not in "-+"
            or face[0] not in self.space_names
        ):
            raise ValueError(f"unknown face {face!r}; the spatial faces of this domain are {self.faces()}")
        return self.names.index(face[0]), face[1] == "+"

    def face_measure(self, face: str) -> float:
        """Product of the side lengths of the face (1 for a point face in 1-D)."""
        axis, _ = self.parse_face(face)
        return math.prod(hi - lo for i, (lo, hi) in enumerate(zip(self.lower, self.upper)) if i != axis)

    # ----------------------------------------------------------------- sampling
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
        """``n`` points uniformly distributed in the box, shape ``(n, ndim)``.

        Args:
            n: number of points (positive).
            generator: the random stream (reproducible training).
            dtype: floating dtype of the result.
            fixed: columns held at a value instead (e.g. ``{time_index: t0}`` for initial points).
            device: where the points are created (default: the generator's device, else the CPU); a CUDA
                generator draws them on the GPU directly, with no host-to-device copy.
            method: ``"uniform"`` (torch's stream), ``"sobol"`` or ``"halton"`` (scrambled
                :mod:`scipy.stats.qmc` sequences seeded from ``generator``).

        Raises:
            ValueError: ``n`` is not a positive integer, or an unknown ``method``.
        """
        n = _check_count(n)
        device = _device(generator, device)
        x = _cube(n, self.ndim, generator, device, method)
        # lower + u (upper − lower), column by column with Python scalars (bit-identical to the tensor
        # form, and no small host-to-device copy per call, which would synchronise a GPU)
        for i, (lo, hi) in enumerate(zip(self.lower, self.upper)):
            x[:, i].mul_(hi - lo).add_(lo)
        for column, value in (fixed or {}).items():
            x[:, column] = value
        return x.to(dtype)

    def sample_face(
        self,
        face: str,
        n: int,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """``n`` points uniformly on a spatial face (the fixed coordinate is exactly the bound)."""
        axis, upper = self.parse_face(face)
        value = self.upper[axis] if upper else self.lower[axis]
        if self.ndim == 1:
            n = 1  # a point face: repeated points add nothing
        return self.sample(n, generator, dtype=dtype, fixed={axis: value}, device=device)

    def contains(self, x: torch.Tensor | np.ndarray, tol: float = 1e-12) -> bool:
        """Whether every row of ``x`` lies in the box (up to ``tol`` relative to the side lengths)."""
        x = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=float)
        lo, hi = np.array(self.lower), np.array(self.upper)
        pad = tol * (hi - lo)
        return bool(x.ndim == 2 and x.shape[1] == self.ndim and np.all((x >= lo - pad) & (x <= hi + pad)))

    # ----------------------------------------------------------------- geometry
    def times(self, t0: float, t1: float, name: str = "t") -> Box:
        """This spatial box × ``[t0, t1]`` as a box with time coordinate ``name`` (last).

        Raises:
            ValueError: the box already has time.
        """
        if self.time is not None:
            raise ValueError(f"this box already has the time coordinate {self.time!r}")
        return Box((*self.names, name), (*self.lower, t0), (*self.upper, t1), time=name)

    def parts(self) -> tuple[str, ...]:
        return ("boundary", *self.faces())

    def _faces_of(self, on: Selector) -> tuple[str, ...]:
        names = (on,) if isinstance(on, str) else tuple(on)
        return self.faces() if "boundary" in names else names

    def inside(self, x: torch.Tensor) -> torch.Tensor:
        ok = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        for i, (lo, hi) in enumerate(zip(self.lower, self.upper)):
            pad = _TOL * (hi - lo)
            ok &= (x[:, i] >= lo - pad) & (x[:, i] <= hi + pad)
        return ok

    def _face_levels(self, x: torch.Tensor, faces: tuple[str, ...]) -> list[torch.Tensor]:
        out = []
        for face in faces:
            axis, upper = self.parse_face(face)
            out.append(self.upper[axis] - x[:, axis] if upper else x[:, axis] - self.lower[axis])
        return out

    def level(self, x: torch.Tensor) -> torch.Tensor:
        levels = self._face_levels(x, self.faces())
        out = levels[0]
        for v in levels[1:]:
            out = _r_and(out, v)
        return out

    def on_boundary(self, x: torch.Tensor) -> torch.Tensor:
        near = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for face, v in zip(self.faces(), self._face_levels(x, self.faces())):
            axis, _ = self.parse_face(face)
            near |= v.abs() <= _TOL * (self.upper[axis] - self.lower[axis])
        return near & self.inside(x)

    def _named_mask(self, x: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
        mask = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for face in self._faces_of(names):
            axis, _ = self.parse_face(face)
            v = self._face_levels(x, (face,))[0]
            mask |= v.abs() <= _TOL * (self.upper[axis] - self.lower[axis])
        return mask

    def _part_distance(self, x: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
        return _r_equivalence(self._face_levels(x, self._faces_of(names)))

    def normal(self, x: torch.Tensor, on: Selector = None) -> torch.Tensor:
        """Outward unit normals at boundary points: of the nearest face (among the named faces ``on``)."""
        faces = self.faces() if on is None or callable(on) else self._faces_of(self._check_part(on))
        levels = torch.stack([v.abs() for v in self._face_levels(x, faces)], dim=1)
        nearest = levels.argmin(dim=1)
        table = torch.zeros(len(faces), self.ndim, dtype=x.dtype, device=x.device)
        for k, face in enumerate(faces):
            axis, upper = self.parse_face(face)
            table[k, axis] = 1.0 if upper else -1.0
        return table[nearest]

    def boundary_measure(self) -> float:
        """Measure of the spatial boundary (× the time span for a space-time box)."""
        return sum(self.face_measure(f) for f in self.faces())

    def _boundary_candidates(self, n, generator, device):
        return self.sample_boundary(n, generator, dtype=torch.float64, device=device)

    def sample_boundary(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        on: Selector = None,
    ) -> torch.Tensor:
        """``n`` points on the spatial faces ``on`` (names; default all), shared in proportion to their
        measure with at least one per face, or on the part selected by a predicate ``on(x)``.

        Raises:
            ValueError: an unknown face, or a predicate that selects (almost) nothing.
        """
        n = _check_count(n)
        on = self._check_part(on)
        if callable(on):
            return super().sample_boundary(n, generator, dtype=dtype, device=device, on=on)
        faces = self.faces() if on is None else self._faces_of(on)
        measures = np.array([self.face_measure(f) for f in faces])
        counts = np.maximum(1, np.round(n * measures / measures.sum()).astype(int))
        return torch.cat(
            [
                self.sample_face(f, int(c), generator, dtype=dtype, device=device)
                for f, c in zip(faces, counts)
            ]
        )
