"""A small 2D smoke simulator: semi-Lagrangian advection and a pressure projection on a ``PoissonGrid``.

Stable fluids on a staggered (MAC) grid (Stam, *Stable Fluids*, SIGGRAPH 1999; Bridson, *Fluid Simulation
for Computer Graphics*, 2nd ed., ch. 2–5): velocities live on cell faces, smoke density at cell centres.
Each frame

1. advects smoke and velocity semi-Lagrangianly (second-order Runge–Kutta back-trace, bilinear
   interpolation),
2. adds buoyancy ``dt · buoyancy · smoke`` to the vertical velocity and injects smoke at the source,
3. zeroes the velocity on faces of solid cells and closed (Neumann) walls,
4. projects: solves ``A p = −(∇·u)/dt`` with ``A`` the grid's operator (the negative Laplacian with
   zero-flux solids and Neumann walls, ``p = 0`` on Dirichlet walls: the *open* sides) and subtracts
   ``dt ∇p``. Because ``A = −D G`` for the same face rules, the divergence left after the update is
   ``A p − b`` times ``dt``: exactly the linear solver's residual.

The pressure solver is pluggable: any ``solver(grid, b) -> LinearSolveResult`` with ``b`` and ``x`` fields of
the grid's shape. The right-hand sides the simulation produces (divergences of the intermediate
velocity) are the systems DCDM is meant for (Kaneda et al., ICML 2023, §5); :func:`smoke_rhs` records them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sciml.problems.linear import DIRICHLET, SOLID, PoissonGrid
from sciml.solvers.linear import LinearSolveResult, cg
from scipy import ndimage
from tqdm.auto import tqdm

__all__ = ["SmokeSimulation", "FrameStats", "cg_pressure_solver", "smoke_rhs", "plume_grid"]

PressureSolver = Callable[[PoissonGrid, np.ndarray], LinearSolveResult]


def cg_pressure_solver(rtol: float = 1e-6, maxiter: int | None = None) -> PressureSolver:
    """Unpreconditioned CG on the grid's sparse matrix (built once per grid; the default pressure solver)."""
    matrices: dict[int, tuple[PoissonGrid, Any]] = {}

    def solve(grid: PoissonGrid, b: np.ndarray) -> LinearSolveResult:
        if id(grid) not in matrices:
            matrices[id(grid)] = (grid, grid.matrix())
        A = matrices[id(grid)][1]
        result = cg(A, grid.to_vector(np.asarray(b, dtype=np.float64)), rtol=rtol, maxiter=maxiter)
        return result._replace(x=grid.to_field(result.x))

    return solve


def plume_grid(n: int, cells: np.ndarray | None = None) -> PoissonGrid:
    """An ``n × n`` box for a rising plume: closed (Neumann) bottom and sides, open (Dirichlet) top."""
    return PoissonGrid((n, n), cells=cells, walls=(("neumann", "neumann"), ("neumann", "dirichlet")))


@dataclass(frozen=True)
class FrameStats:
    """What one projection cost and left: solver iterations and seconds, ‖∇·u‖ before and after."""

    frame: int
    iterations: int
    seconds: float
    divergence_before: float
    divergence_after: float
    converged: bool


class SmokeSimulation:
    """A 2D smoke plume with obstacles (see the module docstring).

    Axis 0 is x (horizontal), axis 1 is y (up). The box is the grid's box; cell size ``h`` must be equal in
    both directions.

    Args:
        grid: a 2D :class:`PoissonGrid` with ``wall_distance=0.5`` and FLUID/SOLID cells (no DIRICHLET
            cells); its walls say which sides are open (Dirichlet, ``p = 0``) or closed (Neumann).
        pressure_solver: ``solver(grid, b) -> LinearSolveResult`` (default :func:`cg_pressure_solver`).
        dt: time step.
        buoyancy: upward acceleration per unit smoke density.
        source: ``(x, y, radius)`` of the smoke source, as fractions of the box.
        inflow: upward velocity imposed in the source.
        raise_on_failure: raise when the pressure solver does not converge (else record and continue).

    Raises:
        ValueError: a grid that is not 2D, with DIRICHLET cells, another wall distance or non-square cells;
            a non-positive ``dt``.
    """

    def __init__(
        self,
        grid: PoissonGrid,
        *,
        pressure_solver: PressureSolver | None = None,
        dt: float = 0.01,
        buoyancy: float = 4.0,
        source: tuple[float, float, float] = (0.5, 0.12, 0.06),
        inflow: float = 1.0,
        raise_on_failure: bool = True,
    ):
        if not isinstance(grid, PoissonGrid) or grid.ndim != 2:
            raise ValueError("`grid` must be a 2D PoissonGrid")
        if (grid.cells == DIRICHLET).any():
            raise ValueError("the smoke simulation supports FLUID and SOLID cells only (no DIRICHLET cells)")
        if grid.wall_distance != 0.5:
            raise ValueError("the smoke simulation needs a cell-centred grid (`wall_distance=0.5`)")
        hx, hy = grid.spacing
        if not np.isclose(hx, hy):
            raise ValueError(f"the smoke simulation needs square cells, got spacings {hx}, {hy}")
        if not dt > 0:
            raise ValueError(f"`dt` must be positive, got {dt}")
        if grid.singular_components():
            raise ValueError("the pressure system is singular: open at least one wall (make it 'dirichlet')")
        self.grid = grid
        self.h = hx
        self.dt = float(dt)
        self.buoyancy = float(buoyancy)
        self.inflow = float(inflow)
        self.raise_on_failure = raise_on_failure
        self.pressure_solver = pressure_solver or cg_pressure_solver()
        nx, ny = grid.shape
        self.u = np.zeros((nx + 1, ny))  # x-velocity on x-faces
        self.v = np.zeros((nx, ny + 1))  # y-velocity on y-faces
        self.smoke = np.zeros((nx, ny))
        self.frame = 0
        solid = grid.cells == SOLID
        # faces that carry no flow: next to a solid cell, or on a closed wall
        self._u_fixed = np.zeros_like(self.u, dtype=bool)
        self._u_fixed[:-1] |= solid
        self._u_fixed[1:] |= solid
        self._v_fixed = np.zeros_like(self.v, dtype=bool)
        self._v_fixed[:, :-1] |= solid
        self._v_fixed[:, 1:] |= solid
        (xlo, xhi), (ylo, yhi) = grid.walls
        self._u_fixed[0] |= xlo == "neumann"
        self._u_fixed[-1] |= xhi == "neumann"
        self._v_fixed[:, 0] |= ylo == "neumann"
        self._v_fixed[:, -1] |= yhi == "neumann"
        x, y = np.meshgrid((np.arange(nx) + 0.5) / nx, (np.arange(ny) + 0.5) / ny, indexing="ij")
        sx, sy, sr = source
        self._source = ((x - sx) ** 2 + (y - sy) ** 2 < sr**2) & grid.fluid

    # ----------------------------------------------------------------- discrete operators
    def divergence(self) -> np.ndarray:
        """``∇·u`` per cell (zero in solids)."""
        div = (self.u[1:] - self.u[:-1] + self.v[:, 1:] - self.v[:, :-1]) / self.h
        return div * self.grid.fluid

    def _sample(self, field: np.ndarray, x: np.ndarray, y: np.ndarray, ox: float, oy: float) -> np.ndarray:
        """Bilinear interpolation of a staggered field whose sample (i, j) sits at ((i+ox)h, (j+oy)h)."""
        coords = np.stack([x / self.h - ox, y / self.h - oy])
        return ndimage.map_coordinates(field, coords, order=1, mode="nearest")

    def _velocity(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._sample(self.u, x, y, 0.0, 0.5), self._sample(self.v, x, y, 0.5, 0.0)

    def _advect(self, field: np.ndarray, ox: float, oy: float) -> np.ndarray:
        i, j = np.meshgrid(np.arange(field.shape[0]), np.arange(field.shape[1]), indexing="ij")
        x, y = (i + ox) * self.h, (j + oy) * self.h
        u1, v1 = self._velocity(x, y)
        xm, ym = x - 0.5 * self.dt * u1, y - 0.5 * self.dt * v1  # RK2 midpoint
        u2, v2 = self._velocity(xm, ym)
        return self._sample(field, x - self.dt * u2, y - self.dt * v2, ox, oy)

    # ----------------------------------------------------------------- one frame
    def pressure_rhs(self) -> np.ndarray:
        """The right-hand side ``−(∇·u)/dt`` of the pressure system for the current velocity."""
        return -self.divergence() / self.dt

    def project(self) -> FrameStats:
        """Solve for the pressure and make the velocity divergence-free (up to the solver's tolerance)."""
        before = float(np.linalg.norm(self.divergence()))
        b = self.pressure_rhs()
        start = time.perf_counter()
        result = self.pressure_solver(self.grid, b)
        seconds = time.perf_counter() - start
        if not result.converged and self.raise_on_failure:
            raise RuntimeError(f"the pressure solve failed at frame {self.frame}: {result.message}")
        p = np.asarray(result.x) * self.grid.fluid
        h, dt = self.h, self.dt
        (xlo, xhi), (ylo, yhi) = self.grid.walls
        # ghost values behind Dirichlet walls (p = 0 on the wall, half a cell away): p_ghost = -p
        px = np.concatenate(
            [-p[:1] if xlo == "dirichlet" else p[:1], p, -p[-1:] if xhi == "dirichlet" else p[-1:]]
        )
        py = np.concatenate(
            [
                -p[:, :1] if ylo == "dirichlet" else p[:, :1],
                p,
                -p[:, -1:] if yhi == "dirichlet" else p[:, -1:],
            ],
            axis=1,
        )
        self.u -= dt * (px[1:] - px[:-1]) / h * ~self._u_fixed
        self.v -= dt * (py[:, 1:] - py[:, :-1]) / h * ~self._v_fixed
        after = float(np.linalg.norm(self.divergence()))
        return FrameStats(self.frame, int(result.iterations), seconds, before, after, bool(result.converged))

    def advance(self) -> None:
        """Advect, add buoyancy and smoke, enforce walls and solids (everything before the projection)."""
        smoke = self._advect(self.smoke, 0.5, 0.5)
        u = self._advect(self.u, 0.0, 0.5)
        v = self._advect(self.v, 0.5, 0.0)
        smoke[self._source] = 1.0
        smoke *= self.grid.fluid
        v[:, 1:-1] += self.dt * self.buoyancy * 0.5 * (smoke[:, 1:] + smoke[:, :-1])
        src = np.zeros_like(v, dtype=bool)
        src[:, :-1] |= self._source
        v[src] = np.maximum(v[src], self.inflow)
        u[self._u_fixed] = 0.0
        v[self._v_fixed] = 0.0
        self.smoke, self.u, self.v = smoke, u, v
        self.frame += 1

    def step(self) -> FrameStats:
        """Advance one frame (:meth:`advance`, then :meth:`project`)."""
        self.advance()
        return self.project()

    def run(self, frames: int, *, progress: bool = True) -> list[FrameStats]:
        """``frames`` steps; the statistics of each projection."""
        return [self.step() for _ in tqdm(range(frames), desc="smoke", disable=not progress)]


def smoke_rhs(
    grid: PoissonGrid, frames: int, *, every: int = 1, progress: bool = False, **kwargs: Any
) -> np.ndarray:
    """Pressure right-hand sides ``−(∇·u)/dt`` of a smoke simulation on ``grid`` (projected by CG).

    Args:
        grid: as for :class:`SmokeSimulation`.
        frames: number of frames to simulate.
        every: keep every ``every``-th frame's right-hand side.
        progress: tqdm bar.
        **kwargs: passed to :class:`SmokeSimulation`.

    Returns:
        Array ``(frames // every, *grid.shape)`` of right-hand-side fields (unnormalised).
    """
    if frames < 1 or every < 1:
        raise ValueError(f"`frames` and `every` must be >= 1, got {frames}, {every}")
    sim = SmokeSimulation(grid, **kwargs)
    out = []
    for f in tqdm(range(frames), desc="smoke right-hand sides", disable=not progress):
        sim.advance()
        if (f + 1) % every == 0:
            out.append(sim.pressure_rhs())
        sim.project()
    return np.asarray(out)
