"""DCDM training data: right-hand sides from Lanczos Ritz vectors with a low-frequency bias.

Kaneda et al. (ICML 2023, §4) train on ``b = Σ_i c_i v_i / ‖·‖`` with ``v_i`` Ritz vectors of the system
matrix from a Lanczos run and ``c_i ~ N(0, 1)``, the coefficients of the low-frequency half (the smallest
Ritz values, the part of the spectrum CG converges slowest on) multiplied by 9. We draw many random
obstacle layouts (:func:`sciml.problems.linear.generators.random_layout`), run ``steps`` Lanczos steps with
full
reorthogonalisation on each, and draw several right-hand sides per layout. Optionally a fraction of white
noise right-hand sides is mixed in (``white_fraction``).

The set is deterministic in its parameters and cached in HDF5 (:func:`sciml.solvers.cache.cached_arrays`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from sciml.problems.linear import PoissonGrid
from sciml.problems.linear.generators import random_layout
from sciml.solvers.cache import cached_arrays

__all__ = ["lanczos", "ritz_vectors", "lanczos_rhs", "training_set", "WALL_CODES"]

#: wall kind <-> code in the HDF5 file
WALL_CODES = {"dirichlet": 0, "neumann": 1}


def lanczos(
    matvec: Callable[[np.ndarray], np.ndarray], v0: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``steps`` Lanczos steps with full reorthogonalisation (Golub & Van Loan, Alg. 10.1.1 + MGS).

    Args:
        matvec: the symmetric operator.
        v0: start vector (any norm, nonzero).
        steps: number of steps; stops early on an invariant subspace.

    Returns:
        ``alpha`` (m,), ``beta`` (m-1,) of the tridiagonal ``T`` and the orthonormal basis ``V`` (n, m).

    Raises:
        ValueError: ``steps < 1`` or a zero / non-finite start vector.
    """
    if steps < 1:
        raise ValueError(f"`steps` must be >= 1, got {steps}")
    norm = np.linalg.norm(v0)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("`v0` must be a finite nonzero vector")
    n = v0.size
    steps = min(steps, n)
    V = np.zeros((n, steps))
    alpha, beta = np.zeros(steps), np.zeros(steps)
    V[:, 0] = v0 / norm
    for j in range(steps):
        w = matvec(V[:, j])
        alpha[j] = V[:, j] @ w
        w -= V[:, : j + 1] @ (V[:, : j + 1].T @ w)  # full reorthogonalisation, twice is enough
        w -= V[:, : j + 1] @ (V[:, : j + 1].T @ w)
        beta[j] = np.linalg.norm(w)
        if j + 1 == steps or beta[j] <= 1e-12 * abs(alpha[j]):
            steps = j + 1
            break
        V[:, j + 1] = w / beta[j]
    return alpha[:steps], beta[: steps - 1], V[:, :steps]


def ritz_vectors(
    matrix, steps: int, seed: int | np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ritz values (ascending) and vectors ``(n, m)`` of a symmetric matrix after ``steps`` Lanczos steps."""
    from scipy.linalg import eigh_tridiagonal

    rng = np.random.default_rng(seed)
    alpha, beta, V = lanczos(lambda v: matrix @ v, rng.standard_normal(matrix.shape[0]), steps)
    values, S = eigh_tridiagonal(alpha, beta)
    return values, V @ S


def lanczos_rhs(
    grid: PoissonGrid,
    count: int,
    *,
    steps: int = 300,
    low_boost: float = 9.0,
    seed: int | np.random.Generator | None = None,
) -> np.ndarray:
    """``count`` unit right-hand-side fields from Ritz vectors, low-frequency half boosted by ``low_boost``.

    Returns:
        Array ``(count, *grid.shape)``, zero outside the fluid, each of unit 2-norm.
    """
    rng = np.random.default_rng(seed)
    _, Y = ritz_vectors(grid.matrix(), steps, rng)
    m = Y.shape[1]
    coeff = rng.standard_normal((m, count))
    coeff[: m // 2] *= low_boost
    b = (Y @ coeff).T
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return grid.to_field(b)


def training_set(
    shape: tuple[int, ...] = (64, 64),
    *,
    layouts: int = 256,
    rhs_per_layout: int = 16,
    steps: int = 300,
    low_boost: float = 9.0,
    white_fraction: float = 0.0,
    seed: int = 0,
    directory: str | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Random layouts and their Lanczos right-hand sides, cached in HDF5.

    Layout ``i`` is ``random_layout(shape, seed=[seed, i])``; benchmarks and tests draw layouts from other
    seeds, so they are unseen in training.

    Args:
        shape: grid shape (2D or 3D).
        layouts: number of random layouts.
        rhs_per_layout: right-hand sides per layout.
        steps: Lanczos steps per layout.
        low_boost: factor on the low-frequency half of the Ritz coefficients (9 in the paper).
        white_fraction: fraction of each layout's right-hand sides that are white noise instead.
        seed: base seed.
        directory: cache directory (default :func:`sciml.solvers.cache.cache_dir`).
        progress: show a tqdm bar while generating.

    Returns:
        ``{"cells": (L, *shape) int8, "walls": (L, d, 2) int8 (see WALL_CODES), "rhs": (L, R, *shape)
        float32}``.

    Raises:
        ValueError: non-positive counts or a ``white_fraction`` outside [0, 1].
    """
    if layouts < 1 or rhs_per_layout < 1 or steps < 2:
        raise ValueError(
            "`layouts`, `rhs_per_layout` must be >= 1 and `steps` >= 2, "
            f"got {layouts}, {rhs_per_layout}, {steps}"
        )
    if not 0 <= white_fraction <= 1:
        raise ValueError(f"`white_fraction` must lie in [0, 1], got {white_fraction}")
    shape = tuple(int(n) for n in shape)
    params = {
        "shape": list(shape),
        "layouts": layouts,
        "rhs_per_layout": rhs_per_layout,
        "steps": steps,
        "low_boost": low_boost,
        "white_fraction": white_fraction,
        "seed": seed,
        "version": 1,
    }

    def compute() -> dict[str, np.ndarray]:
        n_white = int(round(white_fraction * rhs_per_layout))
        cells = np.zeros((layouts, *shape), np.int8)
        walls = np.zeros((layouts, len(shape), 2), np.int8)
        rhs = np.zeros((layouts, rhs_per_layout, *shape), np.float32)
        for i in tqdm(range(layouts), desc="Lanczos right-hand sides", disable=not progress):
            grid = random_layout(shape, seed=np.random.default_rng([seed, i]))
            rng = np.random.default_rng([seed, i, 1])
            cells[i] = grid.cells
            walls[i] = [[WALL_CODES[k] for k in pair] for pair in grid.walls]
            parts = []
            if n_white < rhs_per_layout:
                parts.append(
                    lanczos_rhs(grid, rhs_per_layout - n_white, steps=steps, low_boost=low_boost, seed=rng)
                )
            if n_white:
                white = rng.standard_normal((n_white, *shape)) * grid.fluid
                parts.append(
                    white / np.linalg.norm(white.reshape(n_white, -1), axis=1).reshape(-1, *[1] * len(shape))
                )
            rhs[i] = np.concatenate(parts)
        return {"cells": cells, "walls": walls, "rhs": rhs}

    return cached_arrays(f"dcdm-train-{'x'.join(map(str, shape))}", params, compute, directory=directory)


def grid_from_arrays(cells: np.ndarray, walls: np.ndarray) -> PoissonGrid:
    """The :class:`PoissonGrid` of one stored layout."""
    names = {v: k for k, v in WALL_CODES.items()}
    return PoissonGrid(
        cells.shape, cells=cells, walls=tuple((names[int(a)], names[int(b)]) for a, b in walls)
    )
