"""Random Poisson layouts and right-hand sides, and the smoke simulator that produces pressure systems."""

import numpy as np
import pytest
from sciml.problems.linear import DIRICHLET, FLUID, SOLID, PoissonGrid
from sciml.problems.linear.generators import (
    fill_unanchored,
    random_layout,
    random_obstacles,
    random_rhs,
    random_walls,
    smooth_rhs,
)
from sciml.solvers.fluid import SmokeSimulation, plume_grid, smoke_rhs


@pytest.mark.parametrize("shape", [(24, 20), (10, 9, 8)])
def test_random_layouts_are_spd_reproducible_and_resolution_independent(shape):
    a = random_layout(shape, seed=7)
    b = random_layout(shape, seed=7)
    assert np.array_equal(a.cells, b.cells) and a.walls == b.walls
    assert a.singular_components() == 0
    assert (a.cells == SOLID).any() and (a.cells == FLUID).sum() >= a.cells.size // 4
    # the smallest eigenvalue of an SPD matrix is positive
    A = a.matrix().toarray()
    assert np.linalg.eigvalsh(A)[0] > 0
    assert not np.array_equal(random_layout(shape, seed=8).cells, a.cells)


def test_obstacles_scale_with_resolution():
    coarse = random_obstacles((32, 32), count=6, seed=3, kinds=("disc", "box"))
    fine = random_obstacles((128, 128), count=6, seed=3, kinds=("disc", "box"))
    # the same obstacles drawn at 4x the resolution: block-averaging the fine layout gives the coarse one
    # except along obstacle edges
    averaged = fine.reshape(32, 4, 32, 4).mean(axis=(1, 3))
    agree = (averaged > 0.5) == (coarse == SOLID)
    assert agree.mean() > 0.95


def test_fill_unanchored_closes_pockets():
    cells = np.zeros((16, 16), np.int8)
    cells[4:12, 4] = cells[4:12, 11] = cells[4, 4:12] = cells[11, 4:12] = SOLID  # a closed ring
    walls = (("neumann", "neumann"), ("dirichlet", "neumann"))
    assert PoissonGrid((16, 16), cells=cells, walls="neumann").singular_components() == 2
    filled = fill_unanchored(cells, walls)
    assert (filled[5:11, 5:11] == SOLID).all()  # the pocket inside the ring
    assert PoissonGrid((16, 16), cells=filled, walls=walls).singular_components() == 0
    # a pocket that touches a Dirichlet cell stays fluid
    cells[7, 7] = DIRICHLET
    assert (fill_unanchored(cells, walls)[5:11, 5:11] == FLUID).sum() == 35


def test_random_walls_always_have_a_dirichlet_side():
    for seed in range(50):
        walls = random_walls(3, p_neumann=0.95, seed=seed)
        assert any("dirichlet" in pair for pair in walls)


def test_right_hand_sides():
    grid = random_layout((48, 48), seed=1)
    for b in (random_rhs(grid, seed=2), smooth_rhs(grid, seed=2, length_scale=0.1)):
        assert b.shape == grid.shape
        np.testing.assert_allclose(np.linalg.norm(b), 1.0)
        assert (b[~grid.fluid] == 0).all()
    # smooth means low energy in high frequencies: the Rayleigh quotient bᵀAb is far below white noise's
    A = grid.matrix()
    rq = [
        grid.to_vector(b) @ A @ grid.to_vector(b)
        for b in (random_rhs(grid, seed=2), smooth_rhs(grid, seed=2))
    ]
    assert rq[1] < 0.05 * rq[0]


def test_generators_reject_bad_input():
    with pytest.raises(ValueError, match="shape"):
        random_obstacles((0, 4))
    with pytest.raises(ValueError, match="kinds"):
        random_obstacles((8, 8), kinds=("star",))
    with pytest.raises(ValueError, match="count"):
        random_obstacles((8, 8), count=(5, 2))
    with pytest.raises(ValueError, match="p_neumann"):
        random_walls(2, p_neumann=2.0)
    with pytest.raises(ValueError, match="length_scale"):
        smooth_rhs(PoissonGrid((8, 8)), length_scale=0)
    with pytest.raises(TypeError, match="seed"):
        random_layout((8, 8), seed="one")


def test_smoke_projection_leaves_the_solver_residual_as_divergence():
    cells = random_obstacles((32, 32), count=2, size=(0.05, 0.1), margin=0.25, seed=4)
    grid = plume_grid(32, fill_unanchored(cells, (("neumann", "neumann"), ("neumann", "dirichlet"))))
    sim = SmokeSimulation(grid, dt=0.02)
    stats = sim.run(12, progress=False)
    assert all(s.converged for s in stats)
    assert sim.smoke.sum() > 0 and np.abs(sim.v).max() > 0.1  # the plume rises
    for s in stats[2:]:
        assert s.divergence_after < 1e-5 * s.divergence_before  # CG at rtol 1e-6
    assert (sim.smoke[grid.cells == SOLID] == 0).all()


def test_smoke_projection_is_exact_with_an_exact_solver():
    import scipy.sparse.linalg as spla
    from sciml.solvers.linear import LinearSolveResult, SolveStatus

    def direct(grid, b):
        x = grid.to_field(spla.spsolve(grid.matrix().tocsc(), grid.to_vector(b)))
        return LinearSolveResult(x, 1, np.zeros(2), True, SolveStatus.CONVERGED, "direct")

    grid = plume_grid(24)
    sim = SmokeSimulation(grid, pressure_solver=direct)
    for s in sim.run(5, progress=False):
        assert s.divergence_after < 1e-9 * s.divergence_before


def test_smoke_rhs_and_bad_grids():
    rhs = smoke_rhs(plume_grid(24), 6, every=2)
    assert rhs.shape == (3, 24, 24) and np.isfinite(rhs).all() and np.abs(rhs).max() > 0
    with pytest.raises(ValueError, match="2D"):
        SmokeSimulation(PoissonGrid((8, 8, 8)))
    with pytest.raises(ValueError, match="singular"):
        SmokeSimulation(PoissonGrid((8, 8), walls="neumann"))
    cells = np.zeros((8, 8), np.int8)
    cells[0, 0] = DIRICHLET
    with pytest.raises(ValueError, match="DIRICHLET"):
        SmokeSimulation(PoissonGrid((8, 8), cells=cells))
