"""Users' grid systems for DCDM: stencils recognised in scipy matrices, coefficient arrays, singular
(pure-Neumann) systems, DCDM as a preconditioner for scipy/pyamg Krylov methods, thread control."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from sciml.problems.linear import SOLID, GridStencil, PoissonGrid, as_grid_stencil
from sciml.problems.linear.generators import random_layout, random_rhs
from sciml.solvers.linear import cg

from sciml.dcdm import DCDM

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
UNSEEN = 314_159


@pytest.fixture(scope="module")
def solver():
    return DCDM.load()


def user_matrix(kappa: np.ndarray, mask: np.ndarray, dirichlet_walls: bool = True) -> sp.csr_matrix:
    """-∇·(κ∇u) on cells, assembled the way a user would (COO triplets, C-order unknowns, harmonic face
    means, obstacles = cells outside ``mask`` with zero flux, Dirichlet or Neumann box walls)."""
    shape = kappa.shape
    index = -np.ones(shape, dtype=int)
    index[mask] = np.arange(mask.sum())
    rows, cols, vals = [], [], []
    diag = np.zeros(mask.sum())
    for cell in zip(*np.nonzero(mask)):
        i = index[cell]
        for axis in range(len(shape)):
            for step in (-1, 1):
                nb = list(cell)
                nb[axis] += step
                if not 0 <= nb[axis] < shape[axis]:
                    diag[i] += 2 * kappa[cell] if dirichlet_walls else 0.0
                    continue
                nb = tuple(nb)
                if not mask[nb]:
                    continue
                w = 2 * kappa[cell] * kappa[nb] / (kappa[cell] + kappa[nb])
                diag[i] += w
                rows.append(i)
                cols.append(index[nb])
                vals.append(-w)
    n = mask.sum()
    rows += list(range(n))
    cols += list(range(n))
    vals += list(diag)
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, n))


def smooth_kappa(shape, contrast, seed):
    from scipy import ndimage

    noise = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 0.1 * shape[0])
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return contrast**noise


@pytest.mark.parametrize("shape", [(24, 20), (10, 9, 8)])
def test_adapter_recovers_the_generators_operator_from_its_matrix(shape):
    grid = random_layout(shape, seed=UNSEEN)
    from_matrix = GridStencil.from_matrix(grid.matrix(), grid.shape, grid.fluid)
    own = grid.stencil()
    assert np.array_equal(from_matrix.diag, own.diag)
    assert all(np.array_equal(a, b) for a, b in zip(from_matrix.couplings, own.couplings))
    assert abs(own.matrix() - grid.matrix()).max() == 0
    u = torch.randn(2, *shape, dtype=torch.float64)
    torch.testing.assert_close(own.apply(u), grid.apply(u), rtol=1e-12, atol=1e-9)
    assert as_grid_stencil(grid.matrix(), grid.shape, grid.fluid).n_unknowns == grid.n_unknowns
    v = np.random.default_rng(0).standard_normal(grid.n_unknowns)
    assert np.array_equal(own.to_vector(own.to_field(v)), v)


def test_other_matrices_are_refused_with_what_was_expected():
    n = 6
    T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n))
    A = sp.kronsum(T, T, format="lil")
    nine = A.copy()
    nine[0, n + 1] = nine[n + 1, 0] = -0.1
    with pytest.raises(ValueError, match=r"5-point grid stencil.*cell \(0, 0\).*cell \(1, 1\).*not an axis"):
        GridStencil.from_matrix(nine.tocsr(), (n, n))
    far = A.copy()
    far[0, n - 2] = far[n - 2, 0] = -1.0
    with pytest.raises(ValueError, match=r"\(cell \(0, 4\)\), not an axis neighbour"):
        GridStencil.from_matrix(far.tocsr(), (n, n))
    nonsym = A.copy()
    nonsym[0, 1] = -2.0
    with pytest.raises(ValueError, match="not symmetric"):
        GridStencil.from_matrix(nonsym.tocsr(), (n, n))
    positive = A.copy()
    positive[0, 1] = positive[1, 0] = 0.5
    with pytest.raises(ValueError, match="positive off-diagonal"):
        GridStencil.from_matrix(positive.tocsr(), (n, n))
    weak = A.copy()
    weak[0, 0] = 0.5
    with pytest.raises(ValueError, match="not diagonally dominant at cell"):
        GridStencil.from_matrix(weak.tocsr(), (n, n))
    with pytest.raises(ValueError, match="pass `mask`"):
        GridStencil.from_matrix(A.tocsr(), (n, n + 1))
    with pytest.raises(ValueError, match="7-point"):  # 2D matrix read as 3D: x-neighbours wrap rows
        GridStencil.from_matrix(sp.kronsum(T, sp.kronsum(T, T)).tocsr(), (n, n * n, 1))
    with pytest.raises(TypeError, match="sparse"):
        GridStencil.from_matrix([[1.0]], (1,))
    with pytest.raises(ValueError, match="negative"):
        GridStencil(np.ones((3, 3)), (-np.ones((3, 3)), np.zeros((3, 3))))
    with pytest.raises(ValueError, match="at least 3"):
        GridStencil(4 * np.ones((2, 3)), (np.ones((2, 3)), np.zeros((2, 3))))


def test_variable_coefficient_scipy_matrix_and_matrix_free_arrays(solver):
    shape = (48, 40)
    kappa = smooth_kappa(shape, 100.0, seed=1)
    mask = np.ones(shape, bool)
    mask[15:25, 10:22] = False  # an obstacle
    A = user_matrix(kappa, mask)
    b = np.random.default_rng(2).standard_normal(A.shape[0])
    result = solver.solve(A, b, shape=shape, mask=mask, rtol=1e-8)
    exact = spla.spsolve(A.tocsc(), b)
    assert result.converged
    assert np.linalg.norm(b - A @ result.x) <= 1e-8 * np.linalg.norm(b) * 1.0001
    np.testing.assert_allclose(result.x, exact, rtol=1e-5, atol=1e-6 * np.abs(exact).max())
    reference = cg(A, b, rtol=1e-8)
    assert result.iterations <= 0.1 * reference.iterations
    # the same operator as coefficient arrays (matrix-free): identical iterations and answer
    stencil = GridStencil.from_matrix(A, shape, mask)
    arrays = GridStencil(stencil.diag.copy(), tuple(c.copy() for c in stencil.couplings))
    again = solver.solve(arrays, stencil.to_field(b), rtol=1e-8)
    assert again.iterations == result.iterations
    np.testing.assert_allclose(stencil.to_vector(again.x), result.x, rtol=1e-12, atol=1e-14)


def test_3d_seven_point_matrix(solver):
    solver3 = DCDM.load(ndim=3)
    shape = (16, 14, 12)
    A = user_matrix(smooth_kappa(shape, 10.0, seed=3), np.ones(shape, bool))
    b = np.random.default_rng(4).standard_normal(A.shape[0])
    result = solver3.solve(A, b, shape=shape, rtol=1e-8)
    assert result.converged and np.linalg.norm(b - A @ result.x) <= 1.0001e-8 * np.linalg.norm(b)
    assert result.iterations <= 0.2 * cg(A, b, rtol=1e-8).iterations
    with pytest.raises(ValueError, match="2D grids but the system is 3D"):
        solver.solve(A, b, shape=shape)


def test_pure_neumann_box_consistent_projected_zero_mean_and_inconsistent_refused(solver, tmp_path):
    cells = np.zeros((40, 40), np.int8)
    cells[:, 19:21] = SOLID  # a wall: two closed rooms, two null vectors
    cells[5:9, 19:21] = 0  # ... with a door in it: one room
    cells[30:34, 5:9] = SOLID
    grid = PoissonGrid((40, 40), cells=cells, walls="neumann")
    stencil = grid.stencil()
    assert stencil.null_space().count == 1
    prepared = solver.prepare(grid)
    assert prepared.singular
    b = random_rhs(grid, seed=5)
    with pytest.raises(ValueError, match="inconsistent right-hand side.*project"):
        prepared.solve(b)
    bc = prepared.project(b)
    assert abs(bc[grid.fluid].sum()) < 1e-12 and stencil.null_component(bc) < 1e-12
    result = prepared.solve(bc, rtol=1e-8)
    A = grid.matrix()
    x = grid.to_vector(result.x)
    assert result.converged and np.linalg.norm(grid.to_vector(bc) - A @ x) <= 1.0001e-8 * np.linalg.norm(bc)
    assert abs(x.mean()) < 1e-12  # the documented choice: zero mean on the group
    # the minimum-norm solution: CG from zero on the consistent system, projected
    ref = cg(A, grid.to_vector(bc), rtol=1e-12)
    np.testing.assert_allclose(x, ref.x - ref.x.mean(), rtol=1e-5, atol=1e-6 * np.abs(x).max())
    assert result.iterations <= 0.1 * ref.iterations
    # a b that is consistent only up to below the tolerance is solved against the b given
    nearly = bc + 1e-10 * grid.fluid
    again = prepared.solve(nearly, rtol=1e-6)
    assert again.converged
    assert np.linalg.norm(grid.to_vector(nearly) - A @ grid.to_vector(again.x)) <= 1e-6 * np.linalg.norm(
        nearly
    )
    # two closed rooms (no door): two groups, each mean fixed
    cells[5:9, 19:21] = SOLID
    rooms = PoissonGrid((40, 40), cells=cells, walls="neumann")
    assert rooms.stencil().null_space().count == 2
    p2 = solver.prepare(rooms)
    b2 = p2.project(random_rhs(rooms, seed=6))
    r2 = p2.solve(b2, rtol=1e-8)
    labels = rooms.stencil().null_space().labels
    assert r2.converged and all(abs(r2.x[labels == k].mean()) < 1e-12 for k in (0, 1))
    # the exported TorchScript solver takes the labels and reports an inconsistent b by status
    path = solver.export(tmp_path / "dcdm.pt")
    module = torch.jit.load(str(path))
    diag = torch.tensor(stencil.diag)
    couplings = [torch.tensor(c) for c in stencil.couplings]
    labels = torch.tensor(stencil.null_space().labels)
    xs, its, history, status = module(torch.tensor(bc), diag, couplings, None, 1e-8, 0.0, 500, labels)
    assert module.status_names[status] == "converged"
    np.testing.assert_allclose(xs.numpy(), result.x, rtol=1e-9, atol=1e-12 * np.abs(x).max())
    _, _, _, status = module(torch.tensor(b), diag, couplings, None, 1e-8, 0.0, 500, labels)
    assert module.status_names[status] == "inconsistent"


def test_as_preconditioner_for_scipy_cg_gmres_and_flexible_pcg(solver):
    shape = (64, 64)
    kappa = smooth_kappa(shape, 30.0, seed=7)
    A = user_matrix(kappa, np.ones(shape, bool))
    b = np.random.default_rng(8).standard_normal(A.shape[0])
    prepared = solver.prepare(A, shape=shape)
    M = prepared.as_linear_operator()  # one network application per product
    # M is linear and symmetric (float32 network: to ~1e-6)
    u, v = np.random.default_rng(9).standard_normal((2, A.shape[0]))
    assert abs(u @ (M @ v) - v @ (M @ u)) <= 1e-5 * abs(u @ (M @ v)) + 1e-9
    np.testing.assert_allclose(
        M @ (2 * u + v), 2 * (M @ u) + M @ v, rtol=1e-5, atol=1e-5 * np.abs(M @ u).max()
    )
    counts = {}
    for name, method, extra in (("cg", spla.cg, {}), ("gmres", spla.gmres, {"callback_type": "pr_norm"})):
        calls: list[int] = []
        x, info = method(A, b, rtol=1e-8, M=M, callback=lambda *a, c=calls: c.append(1), maxiter=200, **extra)
        assert info == 0 and np.linalg.norm(b - A @ x) <= 1.01e-8 * np.linalg.norm(b)
        counts[name] = len(calls)
    plain = cg(A, b, rtol=1e-8)
    flexible = cg(A, b, rtol=1e-8, M=M, flexible=True)
    assert flexible.converged and flexible.iterations <= 0.1 * plain.iterations
    assert counts["cg"] <= 0.1 * plain.iterations
    # singular: the operator projects onto the range, scipy's CG converges on a consistent b
    grid = PoissonGrid((32, 32), walls="neumann")
    ps = solver.prepare(grid)
    bs = grid.to_vector(ps.project(random_rhs(grid, seed=1)))
    x, info = spla.cg(grid.matrix(), bs, rtol=1e-8, M=ps.as_linear_operator(), maxiter=100)
    assert info == 0 and np.linalg.norm(bs - grid.matrix() @ x) <= 1.01e-8 * np.linalg.norm(bs)


def test_pyamg_krylov_accepts_the_operator(solver):
    krylov = pytest.importorskip("pyamg.krylov", reason="pyamg not installed (bench extra)")
    grid = random_layout((48, 48), seed=UNSEEN)
    A = grid.matrix()
    b = grid.to_vector(random_rhs(grid, seed=2))
    M = solver.prepare(grid).as_linear_operator()
    residuals = []
    x, info = krylov.cg(A, b, M=M, tol=1e-8, maxiter=100, residuals=residuals)
    assert info == 0 and np.linalg.norm(b - A @ x) <= 1.01e-8 * np.linalg.norm(b)
    assert len(residuals) < 30


def test_threads_are_set_for_the_solve_and_restored(solver):
    grid = random_layout((32, 32), seed=UNSEEN)
    b = random_rhs(grid, seed=3)
    before = torch.get_num_threads()
    seen = []
    one = solver.solve(grid, b, callback=lambda x: seen.append(torch.get_num_threads()))
    assert set(seen) == {1} and torch.get_num_threads() == before
    two = solver.solve(grid, b, threads=2)
    assert two.iterations == one.iterations and torch.get_num_threads() == before
    np.testing.assert_allclose(two.x, one.x, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="threads"):
        solver.solve(grid, b, threads=0)


def test_null_space_sees_couplings_not_only_the_mask():
    # a zero coupling splits an otherwise connected box into two closed rooms
    grid = PoissonGrid((8, 8), walls="neumann")
    st = grid.stencil()
    cx = st.couplings[0].copy()
    diag = st.diag.copy()
    diag[3, :] -= cx[3, :]
    diag[4, :] -= cx[3, :]
    cx[3, :] = 0.0
    split = GridStencil(diag, (cx, st.couplings[1]))
    ns = split.null_space()
    assert ns.count == 2 and sorted(ns.sizes) == [32, 32]
    assert st.null_space().count == 1 and PoissonGrid((8, 8)).stencil().null_space().count == 0


def test_bench_poisson_runs_all_kinds_at_small_sizes(tmp_path):
    import argparse

    from sciml.bench import poisson

    parser = argparse.ArgumentParser()
    poisson.add_arguments(parser)
    args = parser.parse_args(["--sizes", "16", "32", "--sizes3d", "16", "--methods", "cg", "dcdm"])
    args.full = False
    payload = poisson.run(args)
    kinds = {(r["kind"], r["method"]) for r in payload["rows"]}
    assert kinds == {(k, m) for k in poisson.KINDS for m in ("cg", "dcdm")}
    assert all(r["converged"] and r["true_residual_ok"] for r in payload["rows"])
    dcdm = {(s["kind"], s["grid"]): s for s in payload["summary"] if s["method"] == "dcdm"}
    assert all(s["iter/cg"] < 0.5 and s["total/cg"] > 0 for s in dcdm.values())
    # the user-style matrix is recognised by the adapter and is the operator of its mask
    A, mask = poisson.user_varcoef_matrix(24, seed=1)
    stencil = as_grid_stencil(A, (24, 24), mask)
    assert abs(stencil.matrix() - A).max() < 1e-9 * abs(A).max() and stencil.singular_components() == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["--sizes", "8"])


def test_smoke_example_runs_and_writes_a_labelled_figure(tmp_path, monkeypatch):
    import json
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "smoke_dcdm.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--size", "24", "--frames", "3", "--out", str(tmp_path)])
    runpy.run_path(str(script), run_name="__main__")
    summary = json.loads((tmp_path / "smoke_dcdm.json").read_text())["summary"]
    assert summary["dcdm_iterations_mean"] < summary["cg_iterations_mean"]
    assert (tmp_path / "smoke_dcdm.png").stat().st_size > 10_000


def periodic_matrix(shape, periodic_axes, kappa=None):
    """−∇·(κ∇u) with periodic axes (wrap-around entries) and Dirichlet walls elsewhere, via scipy."""
    mats = []
    for a, n in enumerate(shape):
        T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n), format="lil")
        if a in periodic_axes:
            T[0, n - 1] = T[n - 1, 0] = -1.0
        else:
            T[0, 0] = T[n - 1, n - 1] = 3.0  # Dirichlet walls half a cell away
        mats.append(sp.csr_matrix(T))
    A = mats[0]
    for T in mats[1:]:
        A = sp.kronsum(T, A, format="csr")  # C order: the last axis varies fastest
    return A


@pytest.mark.parametrize("shape,axes", [((40, 36), (0, 1)), ((45, 31), (1,)), ((13, 12, 11), (0, 1, 2))])
def test_periodic_systems(shape, axes):
    solver = DCDM.load(ndim=len(shape))
    A = periodic_matrix(shape, axes)
    stencil = GridStencil.from_matrix(A, shape)
    assert stencil.periodic_axes == axes and abs(stencil.matrix() - A).max() == 0
    u = torch.randn(*shape, dtype=torch.float64)
    np.testing.assert_allclose(stencil.to_vector(stencil.apply(u)).numpy(), A @ u.numpy().ravel(), atol=1e-12)
    from sciml.dcdm import apply_stencil

    np.testing.assert_allclose(
        apply_stencil(u, torch.tensor(stencil.diag), [torch.tensor(c) for c in stencil.couplings])
        .numpy()
        .ravel(),
        A @ u.numpy().ravel(),
        atol=1e-12,
    )
    fully = len(axes) == len(shape)
    assert stencil.null_space().count == (1 if fully else 0)
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    prepared = solver.prepare(A, shape=shape)
    if fully:
        with pytest.raises(ValueError, match="inconsistent"):
            prepared.solve(b)
        b = prepared.project(b)
    result = prepared.solve(b, rtol=1e-8)
    assert result.converged and np.linalg.norm(b - A @ result.x) <= 1.0001e-8 * np.linalg.norm(b)
    if fully:
        assert abs(result.x.mean()) < 1e-12
    reference = cg(A, b, rtol=1e-8).iterations  # only 54-180 at these small sizes
    assert result.iterations <= min(16, 0.2 * reference)
