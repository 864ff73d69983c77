"""Classical linear solvers: CG/PCG, preconditioners, SOR/SSOR — against scipy and exact solutions."""

import time

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from sciml.problems.linear import SOLID, PoissonGrid
from sciml.solvers.linear import (
    SolveStatus,
    UnitLowerTriangular,
    amg,
    cg,
    incomplete_cholesky,
    jacobi,
    jacobi_spectral_radius,
    red_black_sor,
    row_levels,
    sor,
    sor_batch,
    ssor,
    ssor_preconditioner,
    young_omega,
)


def poisson(n, **kw):
    return PoissonGrid((n, n), **kw).matrix()


def rhs(n, seed=0):
    return np.random.default_rng(seed).standard_normal(n)


def true_relres(A, x, b):
    return np.linalg.norm(b - A @ x) / np.linalg.norm(b)


# ------------------------------------------------------------------------------------------------ CG
@pytest.mark.parametrize("kind", ["sparse", "dense", "linop", "callable"])
def test_cg_matches_spsolve_for_every_operator_kind(kind):
    A = poisson(12)
    b = rhs(A.shape[0])
    op = {
        "sparse": A,
        "dense": A.toarray(),
        "linop": spla.aslinearoperator(A),
        "callable": lambda v: A @ v,
    }[kind]
    res = cg(op, b, rtol=1e-10)
    assert res.converged and res.status == "converged" and res.status is SolveStatus.CONVERGED
    np.testing.assert_allclose(res.x, spla.spsolve(A.tocsc(), b), rtol=1e-8, atol=1e-10)
    assert true_relres(A, res.x, b) < 2e-10
    assert len(res.residual_history) == res.iterations + 1
    assert res.residual_history[-1] <= 1e-10 * np.linalg.norm(b)


def test_cg_iterations_match_scipy():
    A = poisson(20, walls="dirichlet", cells=None)
    b = rhs(A.shape[0], 1)
    count = []
    x_ref, info = spla.cg(A, b, rtol=1e-8, callback=lambda xk: count.append(1))
    res = cg(A, b, rtol=1e-8)
    assert info == 0
    assert abs(res.iterations - len(count)) <= 1
    np.testing.assert_allclose(res.x, x_ref, rtol=1e-6, atol=1e-9)


def test_cg_warm_start_atol_and_callback():
    A = poisson(10)
    b = rhs(A.shape[0], 2)
    x_exact = spla.spsolve(A.tocsc(), b)
    calls = []
    res = cg(A, b, x0=x_exact + 1e-3, rtol=0.0, atol=1e-9, callback=calls.append)
    assert res.converged and len(calls) == res.iterations
    assert np.linalg.norm(b - A @ res.x) <= 1.01e-9
    exact_start = cg(A, b, x0=x_exact, rtol=1e-6)
    assert exact_start.iterations == 0 and exact_start.converged


def test_cg_on_torch_fields_with_obstacles_matches_the_matrix_solve():
    n = 24
    cells = np.zeros((n, n), np.int8)
    cells[8:14, 5:17] = SOLID
    grid = PoissonGrid((n, n), cells=cells, walls=(("dirichlet", "neumann"), ("neumann", "dirichlet")))
    b_vec = rhs(grid.n_unknowns, 3)
    b_field = grid.to_field(torch.tensor(b_vec))
    res = cg(grid.apply, b_field, rtol=1e-10)
    assert res.converged and res.x.shape == (n, n) and torch.is_tensor(res.x)
    x_ref = spla.spsolve(grid.matrix().tocsc(), b_vec)
    np.testing.assert_allclose(grid.to_vector(res.x).numpy(), x_ref, rtol=1e-7, atol=1e-9)
    # the same number of iterations as on the matrix (same arithmetic up to round-off)
    assert abs(res.iterations - cg(grid.matrix(), b_vec, rtol=1e-10).iterations) <= 2
    # float32 fields and a Jacobi preconditioner given as a field
    diag = torch.as_tensor(np.where(grid.fluid, grid.diagonal(), 1.0), dtype=torch.float32)
    res32 = cg(grid.apply, b_field.float(), rtol=1e-5, M=jacobi(diagonal=diag))
    assert res32.converged and res32.x.dtype == torch.float32
    np.testing.assert_allclose(grid.to_vector(res32.x).numpy(), x_ref, rtol=1e-3, atol=1e-4)


def test_cg_torch_dense_matrix_and_batch_free_shapes():
    A = torch.tensor(poisson(6).toarray())
    b = torch.randn(36, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    res = cg(A, b, rtol=1e-12)
    np.testing.assert_allclose(res.x.numpy(), np.linalg.solve(A.numpy(), b.numpy()), rtol=1e-9)


@pytest.mark.parametrize("precond", ["jacobi", "ic0", "ssor", "amg", "matrix", "callable"])
def test_pcg_converges_with_fewer_iterations(precond):
    A = poisson(32)
    b = rhs(A.shape[0], 4)
    d = A.diagonal()
    if precond == "amg":
        pytest.importorskip("pyamg")
    M = {
        "jacobi": lambda: jacobi(A),
        "ic0": lambda: incomplete_cholesky(A),
        "ssor": lambda: ssor_preconditioner(A, 1.5),
        "amg": lambda: amg(A),
        "matrix": lambda: sp.diags_array(1.0 / d),
        "callable": lambda: lambda r: r / d,
    }[precond]()
    plain = cg(A, b, rtol=1e-8)
    res = cg(A, b, rtol=1e-8, M=M)
    assert res.converged and true_relres(A, res.x, b) < 1e-7
    if precond not in ("jacobi", "matrix", "callable"):  # constant diagonal: Jacobi changes nothing
        assert res.iterations < 0.6 * plain.iterations
    # and the same preconditioner works inside scipy's CG
    if precond in ("ic0", "ssor", "jacobi"):
        x, info = spla.cg(A, b, rtol=1e-8, M=M)
        assert info == 0 and true_relres(A, x, b) < 1e-7


def test_poisson_anchor_iteration_counts_128():
    """REFERENCES §6: CG 384 / IC(0)-PCG 124 / AMG-PCG 8 at 128², rtol 1e-8, random b."""
    A = poisson(128)
    b = rhs(A.shape[0], 0)
    n_cg = cg(A, b, rtol=1e-8).iterations
    n_ic = cg(A, b, rtol=1e-8, M=incomplete_cholesky(A)).iterations
    assert abs(n_cg - 384) <= 0.05 * 384, n_cg
    assert abs(n_ic - 124) <= 0.05 * 124, n_ic
    try:
        n_amg = cg(A, b, rtol=1e-8, M=amg(A)).iterations
    except ImportError:
        return
    assert 6 <= n_amg <= 11, n_amg


def test_cg_reports_negative_curvature_and_indefinite_preconditioner():
    A = poisson(8)
    b = rhs(A.shape[0], 5)
    res = cg(-A, b)
    assert res.status == "negative_curvature" and not res.converged and "positive definite" in res.message
    res = cg(sp.diags_array([1.0, -1.0, 2.0]), np.array([1.0, 2.0, 0.5]))  # indefinite: p0ᵀAp0 < 0
    assert res.status == "negative_curvature" and res.iterations == 0
    res = cg(A, b, M=lambda r: -r)
    assert res.status == "indefinite_preconditioner" and "M" in res.message


def test_cg_reports_stagnation_below_attainable_accuracy():
    n = 40  # ill-conditioned: tolerance 1e-30 is unattainable in float64
    A = sp.diags_array(np.logspace(0, 8, n))
    b = rhs(n, 6)
    res = cg(A, b, rtol=1e-30, maxiter=10_000)
    assert res.status == "stagnation" and res.iterations < 10_000 and "rtol" in res.message
    assert true_relres(A, res.x, b) < 1e-7  # attainable: about cond(A) · eps


def test_cg_reports_max_iterations_and_non_finite():
    A = poisson(16)
    b = rhs(A.shape[0], 7)
    res = cg(A, b, rtol=1e-12, maxiter=5)
    assert res.status == "max_iterations" and res.iterations == 5 and "maxiter" in res.message
    res = cg(lambda v: v * np.inf, b)
    assert res.status == "non_finite" and not res.converged


def test_cg_rejects_bad_input_naming_the_argument():
    A = poisson(4)
    b = rhs(16)
    with pytest.raises(ValueError, match="`A`"):
        cg(A, b[:-1])
    with pytest.raises(ValueError, match="`x0`"):
        cg(A, b, x0=np.zeros(15))
    with pytest.raises(ValueError, match="`b`.*non-finite"):
        cg(A, np.r_[b[:-1], np.nan])
    with pytest.raises(ValueError, match="`x0`.*non-finite"):
        cg(A, b, x0=np.full(16, np.inf))
    bad = A.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="`A`.*non-finite"):
        cg(bad, b)
    with pytest.raises(ValueError, match="`A` returned"):
        cg(lambda v: v[:-1], b)
    with pytest.raises(ValueError, match="`M`"):
        cg(A, b, M=sp.eye(15))
    with pytest.raises(ValueError, match="rtol"):
        cg(A, b, rtol=-1)
    with pytest.raises(ValueError, match="both 0"):
        cg(A, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="maxiter"):
        cg(A, b, maxiter=-3)
    with pytest.raises(TypeError, match="torch"):
        cg(A, torch.tensor(b))
    with pytest.raises(TypeError, match="same type"):
        cg(lambda v: v, torch.tensor(b), x0=np.zeros(16))
    with pytest.raises(TypeError):
        cg("not an operator", b)
    with pytest.raises(TypeError, match="complex|floating"):
        cg(A, b.astype(complex))


# ------------------------------------------------------------------------------------------------ IC(0)
def _ic0_reference(A):
    """Row-by-row IC(0) in root-free form, straight from the definition (dense, small n only)."""
    A = A.toarray()
    n = len(A)
    pattern = A != 0
    L, D = np.eye(n), np.zeros(n)
    for i in range(n):
        for j in range(i):
            if pattern[i, j]:
                s = sum(L[i, k] * D[k] * L[j, k] for k in range(j) if pattern[i, k] and pattern[j, k])
                L[i, j] = (A[i, j] - s) / D[j]
        D[i] = A[i, i] - sum(L[i, k] ** 2 * D[k] for k in range(i) if pattern[i, k])
    return L, D


def _nine_point(n):
    """A 9-point SPD M-matrix: its IC(0) has fill products inside the pattern (unlike the 5-point one)."""
    idx = np.arange(n * n).reshape(n, n)
    rows, cols = [], []
    for di, dj in ((0, 1), (1, 0), (1, 1), (1, -1)):
        j0, j1 = max(0, -dj), n - max(0, dj)
        a, c = idx[: n - di, j0:j1], idx[di:, j0 + dj : j1 + dj]
        rows += [a.ravel(), c.ravel()]
        cols += [c.ravel(), a.ravel()]
    r, c = np.concatenate(rows), np.concatenate(cols)
    off = sp.csr_array((-np.ones(r.size), (r, c)), shape=(n * n, n * n))
    return sp.csr_array(off + sp.diags_array(8.5 * np.ones(n * n)))


def test_incomplete_cholesky_matches_the_definition():
    for A in (_nine_point(7), poisson(6, wall_distance=1.0)):
        ic = incomplete_cholesky(A)
        L_ref, D_ref = _ic0_reference(A)
        np.testing.assert_allclose(ic.unit_lower.matrix().toarray(), L_ref, atol=1e-13)
        np.testing.assert_allclose(ic.pivots, D_ref, rtol=1e-13)
        # the defining property: L D Lᵀ equals A on A's pattern
        LL = (ic.L @ ic.L.T).toarray()
        mask = A.toarray() != 0
        np.testing.assert_allclose(LL[mask], A.toarray()[mask], atol=1e-12)
        # and the operator applies (L D Lᵀ)⁻¹
        r = rhs(A.shape[0], 8)
        np.testing.assert_allclose(LL @ ic.matvec(r), r, atol=1e-10)


def test_incomplete_cholesky_with_obstacles_and_breakdown():
    n = 30
    cells = np.zeros((n, n), np.int8)
    cells[10:20, 4:9] = SOLID
    A = PoissonGrid((n, n), cells=cells).matrix()
    ic = incomplete_cholesky(A)
    mask = A.toarray() != 0
    np.testing.assert_allclose((ic.L @ ic.L.T).toarray()[mask], A.toarray()[mask], rtol=1e-12)
    with pytest.raises(ValueError, match="broke down.*shift"):
        incomplete_cholesky(sp.csr_array(np.array([[1.0, 2.0], [2.0, 1.0]])))
    with pytest.raises(ValueError, match="symmetric"):
        incomplete_cholesky(sp.triu(A).tocsr())
    with pytest.raises(ValueError, match="diagonal"):
        incomplete_cholesky(-A)
    shifted = incomplete_cholesky(A, shift=0.1)
    assert np.all(shifted.pivots > ic.pivots)


def test_row_levels_are_wavefronts():
    n = 9
    S = sp.tril(poisson(n, wall_distance=1.0), k=-1, format="csr")
    level = row_levels(S)
    i, j = np.divmod(np.arange(n * n), n)
    np.testing.assert_array_equal(level, i + j)


def test_unit_lower_triangular_solves():
    S = sp.tril(_nine_point(6), k=-1) * 0.1
    L = UnitLowerTriangular(S)
    dense = L.matrix().toarray()
    np.testing.assert_allclose(dense, np.eye(36) + S.toarray())
    r = rhs(36, 9)
    np.testing.assert_allclose(dense @ L.solve(r), r, atol=1e-12)
    np.testing.assert_allclose(dense.T @ L.solve(r, transpose=True), r, atol=1e-12)
    R = np.stack([r, 2 * r], axis=1)
    np.testing.assert_allclose(dense @ L.solve(R), R, atol=1e-12)
    pivots = np.linspace(1.0, 3.0, 36)
    L.prepare_ldlt(pivots)  # (L D Lᵀ)⁻¹ in one SuperLU call
    LDLt = dense @ np.diag(pivots) @ dense.T
    np.testing.assert_allclose(LDLt @ L.solve_ldlt(r), r, atol=1e-11)
    np.testing.assert_allclose(LDLt @ L.solve_ldlt(R), R, atol=1e-11)
    with pytest.raises(ValueError, match="above the diagonal"):
        UnitLowerTriangular(sp.eye(4))


@pytest.mark.slow
def test_incomplete_cholesky_is_fast_at_512():
    A = poisson(512)
    start = time.perf_counter()
    ic = incomplete_cholesky(A)
    setup = time.perf_counter() - start
    r = rhs(A.shape[0])
    start = time.perf_counter()
    for _ in range(5):
        ic.matvec(r)
    apply = (time.perf_counter() - start) / 5
    assert setup < 10.0 and apply < 0.1, (setup, apply)


# ------------------------------------------------------------------------------------------------ SOR
def _sor_reference(A, b, omega, rtol, maxiter=100_000):
    """Textbook row-by-row SOR sweeps (dense), stopping on the true relative residual."""
    A = A.toarray()
    x = np.zeros_like(b)
    for k in range(1, maxiter + 1):
        for i in range(len(b)):
            sigma = A[i] @ x - A[i, i] * x[i]
            x[i] = (1 - omega) * x[i] + omega * (b[i] - sigma) / A[i, i]
        if np.linalg.norm(b - A @ x) <= rtol * np.linalg.norm(b):
            return k, x


@pytest.mark.parametrize("n", [6, 17])  # dense path (36 unknowns) and sparse path (289 > 256)
def test_sor_matches_the_textbook_sweep(n):
    A = poisson(n, wall_distance=1.0)
    b = rhs(A.shape[0], 10)
    for omega in (1.0, 1.5):
        res = sor(A, b, omega, rtol=1e-8)
        k_ref, x_ref = _sor_reference(A, b, omega, 1e-8)
        assert res.converged and res.iterations == k_ref
        np.testing.assert_allclose(res.x, x_ref, rtol=1e-9, atol=1e-12)
        assert res.residual_history[-1] <= 1e-8 * np.linalg.norm(b) < res.residual_history[-2]


def test_ssor_solver_and_preconditioner_update():
    A = poisson(12, wall_distance=1.0)
    b = rhs(A.shape[0], 11)
    res = ssor(A, b, 1.6, rtol=1e-10)
    assert res.converged and true_relres(A, res.x, b) <= 1e-10
    np.testing.assert_allclose(res.x, spla.spsolve(A.tocsc(), b), rtol=1e-6, atol=1e-12)
    # SSOR iteration = Richardson with the SSOR preconditioner; M is symmetric and M⁻¹ r matches a dense M
    M = ssor_preconditioner(A, 1.3)
    Ad = A.toarray()
    D, S = np.diag(np.diag(Ad)), np.tril(Ad, -1)
    w = 1.3
    M_dense = (D + w * S) @ np.linalg.inv(D) @ (D + w * S.T) / (w * (2 - w))
    np.testing.assert_allclose(M.matvec(b), np.linalg.solve(M_dense, b), rtol=1e-10)
    # update() to another matrix of the same pattern and another omega equals a fresh build
    A2 = sp.csr_array(A * 2.0 + sp.eye(A.shape[0]))
    M.update(A2, omega=1.7)
    np.testing.assert_allclose(M.matvec(b), ssor_preconditioner(A2, 1.7).matvec(b), rtol=1e-12)


def test_young_omega_for_the_poisson_matrix():
    for n in (10, 50):  # dense eigenvalues, then Lanczos (2500 unknowns)
        A = poisson(n, wall_distance=1.0)
        beta = jacobi_spectral_radius(A)
        assert beta == pytest.approx(np.cos(np.pi / (n + 1)), rel=1e-8)
    omega = young_omega(poisson(10, wall_distance=1.0))
    assert omega == pytest.approx(2 / (1 + np.sin(np.pi / 11)), rel=1e-8)
    assert young_omega(spectral_radius=0.0) == 1.0
    A = poisson(10, wall_distance=1.0)
    b = rhs(100, 12)
    counts = {w: sor(A, b, w).iterations for w in (1.0, omega - 0.15, omega, min(omega + 0.1, 1.99))}
    assert counts[omega] == min(counts.values())
    assert counts[1.0] > 4 * counts[omega]


def test_red_black_sor_on_fields():
    n = 20
    cells = np.zeros((n, n), np.int8)
    cells[5:9, 6:14] = SOLID
    grid = PoissonGrid((n, n), cells=cells, wall_distance=1.0)
    b = grid.to_field(rhs(grid.n_unknowns, 13))
    x_ref = spla.spsolve(grid.matrix().tocsc(), grid.to_vector(b))
    for field in (b, torch.tensor(b)):
        res = red_black_sor(grid, field, 1.7, rtol=1e-9)
        assert res.converged and type(res.x) is type(field)
        np.testing.assert_allclose(grid.to_vector(np.asarray(res.x)), x_ref, rtol=1e-7, atol=1e-9)
    # Gauss–Seidel in red–black and in natural order converge at the same rate (ρ_J²)
    plain = PoissonGrid((n, n), wall_distance=1.0)
    bp = rhs(n * n, 14)
    rb = red_black_sor(plain, bp.reshape(n, n), 1.0, rtol=1e-6).iterations
    natural = sor(plain.matrix(), bp, 1.0, rtol=1e-6).iterations
    assert abs(rb - natural) <= 0.15 * natural, (rb, natural)
    omega = young_omega(plain.matrix())
    assert red_black_sor(plain, bp.reshape(n, n), omega, rtol=1e-6).iterations < natural / 4
    with pytest.raises(ValueError, match="grid shape"):
        red_black_sor(plain, bp, 1.0)


def test_sor_batch_reproduces_single_solves():
    A = poisson(7, wall_distance=1.0)
    rng = np.random.default_rng(15)
    K = 12
    B = rng.standard_normal((49, K))
    omega = rng.uniform(0.8, 1.9, K)
    shift = rng.uniform(-0.1, 3.0, K) / PoissonGrid((7, 7), wall_distance=1.0).spacing[0] ** 2
    res = sor_batch(A, B, omega, shift, rtol=1e-8, chunk=5)
    for k in range(K):
        single = sor(A + shift[k] * sp.eye(49), B[:, k], omega[k], rtol=1e-8)
        assert res.iterations[k] == single.iterations and res.converged[k]
        np.testing.assert_allclose(res.x[:, k], single.x, rtol=1e-10, atol=1e-14)
    capped = sor_batch(A, B[:, :2], 1.0, 0.0, rtol=1e-12, maxiter=3)
    assert (capped.iterations == 3).all() and not capped.converged.any()


def test_relaxation_rejects_bad_input():
    A = poisson(5, wall_distance=1.0)
    b = rhs(25, 16)
    for omega in (0.0, 2.0, -0.5, 2.5):
        with pytest.raises(ValueError, match="omega"):
            sor(A, b, omega)
        with pytest.raises(ValueError, match="omega"):
            ssor_preconditioner(A, omega)
    with pytest.raises(ValueError, match="diagonal"):
        sor(-A, b)
    with pytest.raises(ValueError, match="diagonal"):
        sor(A - sp.diags_array(A.diagonal()), b)
    with pytest.raises(ValueError, match="non-finite"):
        sor(A, np.r_[b[:-1], np.inf])
    with pytest.raises(ValueError, match="`A`"):
        sor(A, b[:-2])
    with pytest.raises(ValueError, match="symmetric"):
        ssor(sp.triu(A).tocsr() + sp.eye(25), b)
    with pytest.raises(ValueError, match="Jacobi"):
        young_omega(spectral_radius=1.0)
    with pytest.raises(ValueError, match="omega"):
        sor_batch(A, b[:, None], 2.0)
    with pytest.raises(ValueError, match="chunk"):
        sor_batch(A, b[:, None], 1.5, chunk=0)
    with pytest.raises(ValueError, match="shifted diagonal"):
        sor_batch(A, b[:, None], 1.0, shift=-1e9)
    # a non-SPD matrix with positive diagonal: SOR diverges and says so
    bad = sp.csr_array(np.array([[1.0, 3.0], [3.0, 1.0]]))
    res = sor(bad, np.ones(2), 1.0)
    assert res.status == "non_finite" and "diverged" in res.message
