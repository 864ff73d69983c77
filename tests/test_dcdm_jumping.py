"""DCDM's multigrid cycle on matrices whose coefficients jump: two-phase media, lognormal 3-D media, identity
rows for Dirichlet unknowns among 1/h² rows, a reaction term. The trained cycle loses positive definiteness
there (its smoother, which weighs a neighbour's residual by the cell's own diagonal, stops converging in the
A-norm, and the 3-D W-cycle over-corrects); ``prepare`` detects it and runs the robust form of the cycle,
while systems like the training layouts keep the trained cycle bit for bit."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from sciml.problems.linear import GridStencil, as_grid_stencil
from sciml.problems.linear.generators import random_layout, random_rhs
from sciml.solvers.linear import cg
from scipy import ndimage

from sciml.dcdm import DCDM
from sciml.dcdm.stencil import apply_stencil

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated")


@pytest.fixture(scope="module")
def solver2():
    return DCDM.load()


@pytest.fixture(scope="module")
def solver3():
    return DCDM.load(ndim=3)


def face_matrix(kappa: np.ndarray, shift: float = 0.0, dirichlet_walls: bool = True) -> sp.csr_matrix:
    """``−∇·(κ∇u) + shift·u`` on a cell grid (unit spacing, harmonic face means, C-order unknowns), with
    Dirichlet walls half a cell away (``2κ``) or zero-flux walls."""
    nd = kappa.ndim
    idx = np.arange(kappa.size).reshape(kappa.shape)
    rows, cols, vals = [], [], []
    diag = np.full(kappa.shape, float(shift))
    for a in range(nd):
        lo = tuple(slice(None, -1) if b == a else slice(None) for b in range(nd))
        hi = tuple(slice(1, None) if b == a else slice(None) for b in range(nd))
        w = 2 * kappa[lo] * kappa[hi] / (kappa[lo] + kappa[hi])
        diag[lo] += w
        diag[hi] += w
        rows += [idx[lo].ravel(), idx[hi].ravel()]
        cols += [idx[hi].ravel(), idx[lo].ravel()]
        vals += [-w.ravel(), -w.ravel()]
        if dirichlet_walls:
            first = tuple(slice(0, 1) if b == a else slice(None) for b in range(nd))
            last = tuple(slice(-1, None) if b == a else slice(None) for b in range(nd))
            diag[first] += 2 * kappa[first]
            diag[last] += 2 * kappa[last]
    rows.append(idx.ravel())
    cols.append(idx.ravel())
    vals.append(diag.ravel())
    n = kappa.size
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def two_phase(n: int, seed: int = 0, contrast: float = 100.0, walls: bool = True) -> GridStencil:
    """κ ∈ {1, contrast}, half of the cells each, in blobs of a few cells."""
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((n, n)), 1.0, mode="wrap")
    kappa = np.where(noise > np.median(noise), contrast, 1.0)
    return as_grid_stencil(face_matrix(kappa, dirichlet_walls=walls), (n, n))


def lognormal_3d(n: int, seed: int = 0, contrast: float = 10.0) -> GridStencil:
    """κ = exp(σ g), g a smoothed unit-variance Gaussian field, σ = ln(contrast)/2."""
    g = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((n,) * 3), 0.7, mode="wrap")
    kappa = np.exp(g / g.std() * np.log(contrast) / 2)
    return as_grid_stencil(face_matrix(kappa), kappa.shape)


def identity_rows(n: int, scale: float = 1.0) -> GridStencil:
    """5-point Poisson in ``1/h²`` units whose boundary ring of cells are Dirichlet unknowns with identity
    rows (diagonal ``scale``, eliminated symmetrically: no couplings)."""
    h2 = 1.0 / (n - 1) ** 2
    boundary = np.zeros((n, n), bool)
    boundary[0, :] = boundary[-1, :] = boundary[:, 0] = boundary[:, -1] = True
    diag = np.where(boundary, scale, 4.0 / h2)
    couplings = []
    for a in range(2):
        c = np.zeros((n, n))
        lo = tuple(slice(None, -1) if b == a else slice(None) for b in range(2))
        hi = tuple(slice(1, None) if b == a else slice(None) for b in range(2))
        c[lo] = np.where(boundary[lo] | boundary[hi], 0.0, 1.0 / h2)
        couplings.append(c)
    return GridStencil(diag, tuple(couplings))


def shifted_neumann_3d(n: int, shift: float = 0.1) -> GridStencil:
    """Constant-coefficient 3-D Laplacian in a closed box plus a reaction term (no jumps at all)."""
    return as_grid_stencil(face_matrix(np.ones((n,) * 3), shift=shift, dirichlet_walls=False), (n,) * 3)


def readme_variable_coefficient_matrix(n: int = 128) -> tuple[sp.csr_matrix, np.ndarray]:
    """The README's "Any grid system" matrix: white-noise log-uniform κ of contrast 100, a 0.01 shift."""
    rng = np.random.default_rng(0)
    kappa = np.exp(rng.uniform(0, np.log(100), (n, n)))
    A = face_matrix(kappa, shift=0.01, dirichlet_walls=False)
    return A, rng.standard_normal(n * n)


JUMPING = {
    "two-phase 2D": lambda: two_phase(32),
    "lognormal 3D": lambda: lognormal_3d(16),
    "identity rows": lambda: identity_rows(24),
    "reaction 3D": lambda: shifted_neumann_3d(20),
}


def dense_cycle(prepared) -> np.ndarray:
    """The preconditioner M as a dense matrix on the unknowns (one application per column)."""
    n = prepared.system.n_unknowns
    return np.column_stack([prepared.precondition(e) for e in np.eye(n)])


@pytest.mark.parametrize("kind", list(JUMPING))
def test_pcg_with_the_dcdm_preconditioner_converges_where_coefficients_jump(kind, solver2, solver3):
    stencil = JUMPING[kind]()
    solver = solver2 if stencil.ndim == 2 else solver3
    A = stencil.matrix()
    b = np.random.default_rng(1).standard_normal(stencil.n_unknowns)
    prepared = solver.prepare(stencil)
    plain = cg(A, b, rtol=1e-8)
    result = cg(A, b, M=prepared.as_linear_operator(), rtol=1e-8)  # was: indefinite_preconditioner at 1–3
    assert result.converged, result.message
    assert np.linalg.norm(b - A @ result.x) <= 1.0001e-8 * np.linalg.norm(b)
    assert result.iterations <= 20 and result.iterations <= 0.15 * plain.iterations
    own = prepared.solve(b, rtol=1e-8)  # was: 91–1244 iterations
    assert own.converged and own.iterations <= result.iterations + 2
    assert prepared.cycle == "robust" and prepared.robust


def test_dcdm_solve_on_a_two_phase_medium_needs_a_fraction_of_cgs_iterations(solver2):
    stencil = two_phase(48)
    A = stencil.matrix()
    b = np.random.default_rng(2).standard_normal(stencil.n_unknowns)
    plain = cg(A, b, rtol=1e-8)
    result = solver2.solve(stencil, b, rtol=1e-8, maxiter=3000)  # was: 1277 iterations, CG 708
    assert result.converged
    assert result.iterations <= 0.05 * plain.iterations
    x, info = spla.cg(A, b, M=solver2.prepare(stencil).as_linear_operator(), rtol=1e-8, maxiter=200)
    assert info == 0 and np.linalg.norm(b - A @ x) <= 1e-8 * np.linalg.norm(b) * 1.0001


def test_singular_two_phase_medium(solver2):
    stencil = two_phase(32, walls=False)  # closed box: singular, constant null space
    A = stencil.matrix()
    prepared = solver2.prepare(stencil)
    b = prepared.project(np.random.default_rng(3).standard_normal(stencil.n_unknowns))
    result = cg(A, b, M=prepared.as_linear_operator(), rtol=1e-8)  # was: indefinite at iteration 2
    assert result.converged and result.iterations <= 25
    own = prepared.solve(b, rtol=1e-8)  # was: 1046 iterations
    assert own.converged and own.iterations <= 25
    assert prepared.singular and prepared.cycle == "robust"


def test_readme_variable_coefficient_matrix_as_preconditioner(solver2):
    A, b = readme_variable_coefficient_matrix()
    prepared = solver2.prepare(A, shape=(128, 128))
    result = cg(A, b, M=prepared.as_linear_operator(), rtol=1e-8)  # was: indefinite at iteration 6–7
    assert result.converged and result.iterations <= 30
    assert prepared.solve(b, rtol=1e-8).iterations <= 30


@pytest.mark.parametrize("kind", ["two-phase", "identity rows"])
def test_robust_cycle_is_symmetric_positive_definite_and_the_trained_one_is_not(kind, solver2):
    stencil = two_phase(24) if kind == "two-phase" else identity_rows(24)
    A = stencil.matrix().toarray()
    robust = dense_cycle(solver2.prepare(stencil))
    assert np.abs(robust - robust.T).max() <= 1e-5 * np.abs(robust).max()  # float32 network: round-off
    assert np.linalg.eigvalsh(0.5 * (robust + robust.T))[0] > 0
    # M A's spectrum: positive and bounded (at most w² = √2 from the coarse correction at 24²)
    spectrum = np.linalg.eigvals(robust @ A).real
    assert spectrum.min() > 0.05 and spectrum.max() < 1.42
    trained = dense_cycle(solver2.prepare(stencil, robust=False))
    assert np.abs(trained - trained.T).max() <= 1e-5 * np.abs(trained).max()
    assert np.linalg.eigvalsh(0.5 * (trained + trained.T))[0] < 0  # the reported failure


def level_operators(context: list[torch.Tensor], level: int, nd: int):
    """Dense ``A``, ``S`` and coarse weights of one smoothing level of a multigrid context (its unknowns)."""
    stride = nd + 3
    diag = context[level * stride][0].double()
    couplings = [c[0].double() for c in context[level * stride + 1 : level * stride + 1 + nd]]
    beta = context[level * stride + nd + 1].double()
    weight = context[level * stride + nd + 2][0].double()
    shape = list(diag.shape)
    n = diag.numel()
    basis = torch.eye(n, dtype=torch.float64).reshape([n] + shape)
    A = apply_stencil(basis, diag, couplings).reshape(n, n)
    offsets = [[dy, dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    S = torch.zeros(n, n, dtype=torch.float64)  # S r = Σ_o β_o ⊙ r(· + o)
    index = torch.arange(n).reshape(shape)
    for k, (dy, dx) in enumerate(offsets):
        rows = index[max(0, -dy) : shape[0] - max(0, dy), max(0, -dx) : shape[1] - max(0, dx)]
        cols = index[max(0, dy) : shape[0] - max(0, -dy), max(0, dx) : shape[1] - max(0, -dx)]
        values = beta[0, k][max(0, -dy) : shape[0] - max(0, dy), max(0, -dx) : shape[1] - max(0, dx)]
        S[rows.reshape(-1), cols.reshape(-1)] = values.reshape(-1)
    unknown = (diag > 0).reshape(-1)
    keep = torch.nonzero(unknown).reshape(-1)
    return A[keep][:, keep], S[keep][:, keep], weight.reshape(-1)[keep]


def test_the_cause_is_the_smoother_and_the_robust_smoother_converges_in_the_a_norm(solver2):
    # a symmetric multigrid cycle is SPD when each level's smoother converges in the A-norm, i.e. when
    # S + Sᵀ − Sᵀ A S is positive definite; the trained smoother's is not on a two-phase medium
    stencil = two_phase(40)
    robust = solver2.prepare(stencil).context
    for level in range(2):  # 40 -> 20 -> 10 (coarsest)
        A, S, weight = level_operators(robust, level, 2)
        assert torch.linalg.eigvalsh(S + S.T - S.T @ A @ S)[0] > 0
        # one coarse weight per level, at most 2^(1/4) (the W-cycle's bound)
        assert float(weight.max() - weight.min()) == 0.0 and float(weight.max()) <= 2**0.25
    trained = solver2.prepare(stencil, robust=False).context
    A, S, _ = level_operators(trained, 0, 2)
    assert torch.linalg.eigvalsh(S + S.T - S.T @ A @ S)[0] < 0


def test_systems_like_the_training_layouts_keep_the_trained_cycle_bit_for_bit(solver2):
    grid = random_layout((128, 128), seed=3)
    prepared = solver2.prepare(grid)
    A, b = grid.matrix(), grid.to_vector(random_rhs(grid, seed=0))
    count = []
    x, info = spla.cg(A, b, M=prepared.as_linear_operator(), rtol=1e-8, callback=lambda xk: count.append(1))
    assert info == 0 and len(count) == 22  # README: 22 iterations (CG needs 651)
    assert prepared.cycle == "trained" and not prepared.robust
    reference = solver2.prepare(grid, robust=False)
    assert all(torch.equal(a, b) for a, b in zip(prepared.context, reference.context))
    # a jumping medium whose trained cycle stays positive definite is checked, then kept exactly too
    mild = two_phase(48, contrast=10.0)
    checked = solver2.prepare(mild)
    assert checked.cycle == "trained, checked"
    as_trained = solver2.prepare(mild, robust=False)
    assert all(torch.equal(a, b) for a, b in zip(checked.context, as_trained.context))


def test_robust_argument(solver2):
    grid = random_layout((48, 48), seed=1)
    forced = solver2.prepare(grid, robust=True)
    assert forced.cycle == "robust (requested)" and forced.robust
    A, b = grid.matrix(), grid.to_vector(random_rhs(grid, seed=1))
    trained = cg(A, b, M=solver2.prepare(grid).as_linear_operator(), rtol=1e-8)
    result = cg(A, b, M=forced.as_linear_operator(), rtol=1e-8)
    assert result.converged and result.iterations <= trained.iterations + 3
    assert solver2.prepare(two_phase(24), robust=False).cycle == "trained (requested)"
    with pytest.raises(TypeError, match="robust"):
        solver2.prepare(grid, robust="yes")


def test_exported_solver_runs_the_same_cycle(solver2, tmp_path):
    stencil = two_phase(32)
    module = torch.jit.load(str(solver2.export(tmp_path / "dcdm.pt")))
    b = torch.tensor(stencil.to_field(np.random.default_rng(4).standard_normal(stencil.n_unknowns)))
    diag = torch.tensor(stencil.diag)
    couplings = [torch.tensor(c) for c in stencil.couplings]
    x, iterations, _, status = module(b, diag, couplings, None, 1e-8, 0.0, 500, None)
    assert module.status_names[status] == "converged" and iterations <= 20  # was: 276
    python = solver2.prepare(stencil).solve(b, rtol=1e-8)
    assert python.iterations == iterations  # x to round-off (torch's thread count may differ)
    torch.testing.assert_close(torch.as_tensor(python.x), x, rtol=1e-9, atol=1e-12)
