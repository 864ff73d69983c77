"""Random Poisson systems on grids: obstacle layouts, wall choices and right-hand sides.

Everything is seeded (``seed`` is an int or a ``numpy.random.Generator``) so that a training set, a test
set and a benchmark draw disjoint, reproducible layouts. Layouts are returned as cell arrays or as
:class:`~sciml.problems.linear.grid.PoissonGrid` objects whose operator is symmetric positive definite: fluid
pockets that touch no Dirichlet boundary (which would make the system singular) are filled with solid.

Used by the DCDM training data and benchmarks (Kaneda et al., *A Deep Conjugate Direction Method for
Iteratively Solving Linear Systems*, ICML 2023, train and test on smoke domains with obstacles).
"""

from __future__ import annotations

import numpy as np
from sciml.problems.linear.grid import DIRICHLET, FLUID, SOLID, PoissonGrid

__all__ = [
    "random_obstacles",
    "random_walls",
    "fill_unanchored",
    "random_layout",
    "random_rhs",
    "smooth_rhs",
]

_SHAPES = ("disc", "box", "bar")


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an int, a numpy Generator or None, got {type(seed).__name__}")
    return np.random.default_rng(seed)


def _check_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(int(n) for n in shape)
    if not 1 <= len(shape) <= 3 or any(n < 1 for n in shape):
        raise ValueError(f"`shape` must have 1 to 3 positive cell counts, got {shape}")
    return shape


def random_obstacles(
    shape: tuple[int, ...],
    *,
    count: int | tuple[int, int] = (4, 16),
    size: tuple[float, float] = (0.03, 0.15),
    kinds: tuple[str, ...] = ("disc", "box"),
    margin: float = 0.0,
    seed: int | np.random.Generator | None = None,
) -> np.ndarray:
    """A cell array with random solid obstacles (discs/balls, boxes, thin bars) on a fluid background.

    Sizes are fractions of the box (the unit cube scaled to ``shape``), so a layout drawn at 64² and at
    512² with the same seed looks the same at two resolutions.

    Args:
        shape: cells per dimension (1 to 3 dimensions).
        count: number of obstacles, or an inclusive range ``(low, high)`` to draw it from.
        size: range of obstacle radii / half-widths as fractions of the box.
        kinds: obstacle kinds to draw from: ``"disc"`` (a ball in 3D), ``"box"``, ``"bar"`` (a thin wall
            segment).
        margin: keep obstacle centres at least this fraction away from the walls.
        seed: int or ``numpy.random.Generator``.

    Returns:
        An ``int8`` array of ``shape`` holding FLUID and SOLID.

    Raises:
        ValueError: for a bad shape, count, size range, margin or an unknown kind.
    """
    shape = _check_shape(shape)
    rng = _rng(seed)
    low, high = (count, count) if isinstance(count, (int, np.integer)) else count
    if not 0 <= low <= high:
        raise ValueError(f"`count` must be a non-negative int or a range (low, high), got {count}")
    if not 0 < size[0] <= size[1]:
        raise ValueError(f"`size` must be a range (low, high) with 0 < low <= high, got {size}")
    if not 0 <= margin < 0.5:
        raise ValueError(f"`margin` must lie in [0, 0.5), got {margin}")
    unknown = set(kinds) - set(_SHAPES)
    if not kinds or unknown:
        raise ValueError(f"`kinds` must be a non-empty subset of {_SHAPES}, got {kinds}")
    d = len(shape)
    centres = np.meshgrid(*[(np.arange(n) + 0.5) / n for n in shape], indexing="ij")
    cells = np.full(shape, FLUID, dtype=np.int8)
    for _ in range(int(rng.integers(low, high + 1))):
        kind = kinds[int(rng.integers(len(kinds)))]
        centre = rng.uniform(margin, 1 - margin, d)
        radius = rng.uniform(*size)
        offset = [x - c for x, c in zip(centres, centre)]
        if kind == "disc":
            solid = sum(o**2 for o in offset) < radius**2
        else:
            half = radius * rng.uniform(0.5, 1.5, d)
            if kind == "bar":  # one thin direction, one long one
                thin = int(rng.integers(d))
                half = np.full(d, radius * rng.uniform(1.0, 3.0))
                half[thin] = max(0.75 / shape[thin], 0.01)
            solid = np.logical_and.reduce([np.abs(o) < h for o, h in zip(offset, half)])
        cells[solid] = SOLID
    return cells


def random_walls(
    ndim: int, *, p_neumann: float = 0.5, seed: int | np.random.Generator | None = None
) -> tuple[tuple[str, str], ...]:
    """Random wall kinds per side (each Neumann with probability ``p_neumann``), at least one Dirichlet.

    Raises:
        ValueError: ``ndim`` not in 1..3 or ``p_neumann`` outside [0, 1].
    """
    if ndim not in (1, 2, 3):
        raise ValueError(f"`ndim` must be 1, 2 or 3, got {ndim}")
    if not 0 <= p_neumann <= 1:
        raise ValueError(f"`p_neumann` must lie in [0, 1], got {p_neumann}")
    rng = _rng(seed)
    kinds = ["neumann" if rng.random() < p_neumann else "dirichlet" for _ in range(2 * ndim)]
    if "dirichlet" not in kinds:
        kinds[int(rng.integers(2 * ndim))] = "dirichlet"
    return tuple((kinds[2 * a], kinds[2 * a + 1]) for a in range(ndim))


def fill_unanchored(cells: np.ndarray, walls: str | tuple = "dirichlet") -> np.ndarray:
    """Turn every fluid pocket that touches no Dirichlet cell or wall into solid (keeps the system SPD).

    Args:
        cells: FLUID/SOLID/DIRICHLET array.
        walls: wall kinds as accepted by :class:`PoissonGrid`.

    Returns:
        A new cell array for which ``PoissonGrid(..., cells=result, walls=walls).singular_components()``
        is 0.
    """
    from scipy import ndimage

    grid = PoissonGrid(np.shape(cells), cells=cells, walls=walls)
    labels, count = ndimage.label(grid.fluid)
    out = np.array(grid.cells, dtype=np.int8)
    if count == 0:
        return out
    anchored = np.zeros(count + 1, dtype=bool)
    dirichlet = grid.cells == DIRICHLET
    near_dirichlet = ndimage.binary_dilation(
        dirichlet, structure=ndimage.generate_binary_structure(grid.ndim, 1)
    )
    anchored[np.unique(labels[near_dirichlet & grid.fluid])] = True
    for axis, (low, high) in enumerate(grid.walls):
        for side, kind in ((0, low), (-1, high)):
            if kind == "dirichlet":
                edge = [slice(None)] * grid.ndim
                edge[axis] = side
                anchored[np.unique(labels[tuple(edge)])] = True
    anchored[0] = True
    out[~anchored[labels]] = SOLID
    return out


def random_layout(
    shape: tuple[int, ...],
    *,
    seed: int | np.random.Generator | None = None,
    count: int | tuple[int, int] = (4, 16),
    size: tuple[float, float] = (0.03, 0.15),
    kinds: tuple[str, ...] = ("disc", "box", "bar"),
    p_neumann: float = 0.5,
    p_air: float = 0.25,
) -> PoissonGrid:
    """A random SPD Poisson system: random walls, obstacles and (sometimes) a band of air cells.

    With probability ``p_air`` the top of the last axis becomes DIRICHLET cells (air above a free surface,
    as in a liquid simulation) of random depth. Pockets that would make the system singular are filled.

    Args:
        shape: cells per dimension.
        seed: int or ``numpy.random.Generator``.
        count, size, kinds: passed to :func:`random_obstacles`.
        p_neumann: passed to :func:`random_walls`.
        p_air: probability of a band of DIRICHLET cells.

    Returns:
        A :class:`PoissonGrid` on the unit box with ``singular_components() == 0`` and at least one fluid
        cell.
    """
    shape = _check_shape(shape)
    rng = _rng(seed)
    walls = random_walls(len(shape), p_neumann=p_neumann, seed=rng)
    for _ in range(100):
        cells = random_obstacles(shape, count=count, size=size, kinds=kinds, seed=rng)
        if rng.random() < p_air:
            depth = int(round(rng.uniform(0.05, 0.3) * shape[-1]))
            if depth > 0:
                cells[..., shape[-1] - depth :] = DIRICHLET
        cells = fill_unanchored(cells, walls)
        if (cells == FLUID).sum() >= max(1, cells.size // 4):
            return PoissonGrid(shape, cells=cells, walls=walls)
    raise RuntimeError("could not draw a layout with enough fluid; lower `count` or `size`")


def random_rhs(grid: PoissonGrid, *, seed: int | np.random.Generator | None = None) -> np.ndarray:
    """White-noise right-hand side field on the fluid cells, unit 2-norm (zero elsewhere)."""
    rng = _rng(seed)
    b = rng.standard_normal(grid.shape) * grid.fluid
    norm = np.linalg.norm(b)
    if norm == 0:
        raise ValueError("the grid has no fluid cells: there is no system to draw a right-hand side for")
    return b / norm


def smooth_rhs(
    grid: PoissonGrid,
    *,
    length_scale: float = 0.1,
    seed: int | np.random.Generator | None = None,
) -> np.ndarray:
    """A smooth random right-hand side: white noise filtered by a Gaussian of ``length_scale`` (fraction
    of the box), restricted to the fluid, unit 2-norm. Same seed and length scale give the same field, up
    to resolution, on any grid size.

    Raises:
        ValueError: a non-positive ``length_scale`` or a grid without fluid.
    """
    from scipy import ndimage

    if not length_scale > 0:
        raise ValueError(f"`length_scale` must be positive, got {length_scale}")
    rng = _rng(seed)
    noise = rng.standard_normal(grid.shape)
    sigma = [length_scale * n for n in grid.shape]
    b = ndimage.gaussian_filter(noise, sigma=sigma, mode="wrap") * grid.fluid
    norm = np.linalg.norm(b)
    if norm == 0:
        raise ValueError("the grid has no fluid cells: there is no system to draw a right-hand side for")
    return b / norm
