"""Defects users reported in the linear solvers, relaxation tuners and DCDM, each pinned by a test."""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sciml.problems.linear import GridStencil
from sciml.solvers.linear import cg, gmres, jacobi_spectral_radius, red_black_sor, sor, ssor, young_omega
from sciml.solvers.linear.krylov import check_tolerances

from sciml.dcdm import DCDM
from sciml.relax import PriorTuner, TsallisINF


def _tridiag(n: int, neumann: bool = False) -> sp.csr_array:
    T = sp.diags_array([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], offsets=[-1, 0, 1]).tolil()
    if neumann:
        T[0, 0] = T[-1, -1] = 1.0
    return sp.csr_array(T)


def poisson(ny: int, nx: int | None = None, neumann: bool = False) -> sp.csr_array:
    """5-point Laplacian on ``ny × nx`` cells (Dirichlet, or pure Neumann: singular)."""
    nx = ny if nx is None else nx
    A = sp.kron(_tridiag(ny, neumann), sp.eye(nx)) + sp.kron(sp.eye(ny), _tridiag(nx, neumann))
    return sp.csr_array(A)


def true_rel(A, b, x) -> float:
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(b - A @ np.asarray(x, dtype=np.float64)) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def model() -> DCDM:
    return DCDM.load()


# ----------------------------------------------------------------------------- 1. complex input
def test_complex_matrix_or_rhs_is_refused_by_every_solver(tmp_path):
    A = poisson(6) * (1 + 0.5j)
    b = np.ones(36)
    for solve in (lambda: sor(A, b, 1.5), lambda: ssor(A, b, 1.2), lambda: cg(A, b), lambda: gmres(A, b)):
        with pytest.raises(TypeError, match="`A` is complex"):
            solve()
    with pytest.raises(TypeError, match="`A` is complex"):
        cg(A.toarray(), b)
    with pytest.raises(TypeError, match="`A` is complex"):
        gmres(lambda v: A @ v, b)  # a callable returning complex values
    with pytest.raises(TypeError, match="`A`"):
        GridStencil.from_matrix(A, (6, 6))
    bc = b * (1 + 1j)
    for solve in (
        lambda: sor(poisson(6), bc, 1.5),
        lambda: cg(poisson(6), bc),
        lambda: gmres(poisson(6), bc),
    ):
        with pytest.raises(TypeError, match="`b`"):
            solve()
    from sciml.relax.cli import _load_vector

    np.save(tmp_path / "s.rhs.npy", bc)
    with pytest.raises(ValueError, match="s.rhs.npy.*complex128"):
        _load_vector(tmp_path / "s.rhs.npy")


# ----------------------------------------------------------------------------- 2. true residual decides
def test_cg_and_gmres_report_convergence_only_on_the_true_residual():
    A = poisson(10)
    b = np.random.default_rng(1).standard_normal(100)
    for solve in (cg, gmres):
        res = solve(A, b, rtol=1e-20, maxiter=3000)  # below attainable accuracy
        assert not res.converged and res.status == "stagnation", (solve.__name__, res.message)
        assert res.residual_history[-1] == pytest.approx(np.linalg.norm(b - A @ res.x), rel=1e-6)
        ok = solve(A, b, rtol=1e-10)
        assert ok.converged and true_rel(A, b, ok.x) <= 1e-10
        assert ok.residual_history[-1] == pytest.approx(np.linalg.norm(b - A @ ok.x), rel=1e-9)


# ----------------------------------------------------------------------------- 3. float32
def test_float32_convergence_is_judged_on_the_returned_vector(model):
    A = poisson(30)
    b = np.random.default_rng(0).standard_normal(900).astype(np.float32)
    A32 = A.astype(np.float32)
    for name, res, rtol in [
        ("cg", cg(A32, b, rtol=1e-7), 1e-7),
        ("gmres", gmres(A32, b, rtol=1e-7), 1e-7),
        ("dcdm", model.solve(A, b, shape=(30, 30), rtol=1e-8), 1e-8),
        ("sor", sor(A, b, 1.8, rtol=1e-8), 1e-8),
    ]:
        assert res.x.dtype == np.float32, name
        assert not res.converged or true_rel(A, b, res.x) <= rtol, (name, true_rel(A, b, res.x))
        assert not res.converged and "float64" in res.message, (name, res.message)
    # a tolerance float32 can resolve still converges, with x in float32
    res = sor(A, b, 1.8, rtol=1e-5)
    assert res.converged and res.x.dtype == np.float32 and true_rel(A, b, res.x) <= 1e-5
    assert cg(A32, b, rtol=1e-5).converged


# ----------------------------------------------------------------------------- 4. DCDM leaves A alone
def test_dcdm_and_from_matrix_do_not_modify_the_users_matrix(model):
    A = sp.csr_matrix(poisson(6))
    A[0, 1] = 0.0
    A[1, 0] = 0.0  # explicit zeros kept in the pattern
    nnz, indptr, data = A.nnz, A.indptr.copy(), A.data.copy()
    GridStencil.from_matrix(A, (6, 6))
    model.solve(A, np.ones(36), shape=(6, 6))
    assert A.nnz == nnz and np.array_equal(A.indptr, indptr) and np.array_equal(A.data, data)


# ----------------------------------------------------------------------------- 5. Jacobi radius
def test_jacobi_spectral_radius_of_a_nonsymmetric_matrix():
    A = poisson(12)
    n = A.shape[0]
    C = sp.csr_array(A + 0.9 * (sp.eye(n, k=1) - sp.eye(n, k=-1)))  # convection–diffusion
    J = np.eye(n) - C.toarray() / C.diagonal()[:, None]
    rho = np.abs(np.linalg.eigvals(J)).max()
    assert rho < 1
    assert jacobi_spectral_radius(C) == pytest.approx(rho, rel=1e-8)
    assert 1 < young_omega(C) < 2


# ----------------------------------------------------------------------------- 8. b = 0
def test_zero_rhs_returns_zero_at_once_in_every_solver(model):
    A = poisson(10)
    zero, ones = np.zeros(100), np.ones(100)
    results = {
        "cg": cg(A, zero, x0=ones),  # ZeroDivisionError before
        "gmres": gmres(A, zero, x0=ones),
        "sor": sor(A, zero, 1.5, x0=ones),
        "ssor": ssor(A, zero, 1.5, x0=ones),
        "dcdm": model.solve(A, zero, ones, shape=(10, 10)),
    }
    for name, res in results.items():
        assert res.converged and res.iterations == 0 and not np.asarray(res.x).any(), name
    grid_res = red_black_sor(_Grid(), np.zeros((10, 10)))
    assert grid_res.converged and grid_res.iterations == 0


class _Grid:
    """The smallest grid ``red_black_sor`` needs: the 10 × 10 Dirichlet Laplacian as fields."""

    shape = (10, 10)
    fluid = np.ones((10, 10), dtype=bool)

    def diagonal(self):
        return np.full(self.shape, 4.0)

    def apply(self, u):
        return (torch.as_tensor(poisson(10).toarray(), dtype=u.dtype) @ u.reshape(-1)).reshape(u.shape)


# ----------------------------------------------------------------------------- 9. lil and dok
@pytest.mark.parametrize("fmt", ["lil", "dok", "coo", "csc"])
def test_krylov_solvers_accept_every_sparse_format(fmt):
    A = poisson(8)
    b = np.ones(64)
    for solve in (cg, gmres):
        res = solve(sp.csr_matrix(A).asformat(fmt), b, rtol=1e-10)
        assert res.converged and true_rel(A, b, res.x) <= 1e-10


# ----------------------------------------------------------------------------- 6. tuner after a jump
def test_prior_tuner_re_estimates_when_the_matrix_jumps():
    A = poisson(16)
    n = A.shape[0]
    rng = np.random.default_rng(5)
    tuner = PriorTuner("sor", seed=0)
    for _ in range(12):  # steady: the prior starts skipping estimates
        tuner.solve(A + 2.0 * sp.eye(n), rng.standard_normal(n), rtol=1e-8)
    matvecs = tuner.prior.matvecs
    assert tuner.prior.interval > 1 and matvecs < 2 * 12  # identical matrices: estimates skipped
    B = A + 1e-4 * sp.eye(n)
    out = tuner.solve(B, rng.standard_normal(n), rtol=1e-8)
    fresh = PriorTuner("sor", seed=0).solve(B, rng.standard_normal(n), rtol=1e-8)
    assert tuner.prior.matvecs > matvecs  # re-estimated at once
    assert out.delta < 3 * fresh.delta and out.omega > 1.5  # was: the stale ω = 1.14
    assert out.result.iterations < 2 * fresh.result.iterations


# ----------------------------------------------------------------------------- 7. tuner, singular
def test_prior_tuner_uses_the_smallest_nonzero_eigenvalue_of_a_neumann_matrix():
    L = poisson(16, neumann=True)
    rng = np.random.default_rng(6)
    tuner = PriorTuner("sor", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for _ in range(3):
            b = rng.standard_normal(256)
            b -= b.mean()  # consistent
            out = tuner.solve(L, b, rtol=1e-8, maxiter=5000)
            assert out.result.converged and out.omega < 1.95 and out.delta > 1e-4
    ref = sor(L, b, out.omega, rtol=1e-8).iterations
    assert out.result.iterations <= 2 * ref < 1000  # was ~2000 at the clipped ω = 1.995


# ----------------------------------------------------------------------------- 10. cg diverging
def test_cg_on_a_nonsymmetric_matrix_points_to_gmres():
    A = poisson(15)
    n = A.shape[0]
    C = A + 0.4 * sp.diags_array([np.ones(n - 1), -np.ones(n - 1)], offsets=[1, -1])
    res = cg(C, np.ones(n), rtol=1e-8)
    assert res.status == "max_iterations" and "gmres" in res.message, res.message


# ----------------------------------------------------------------------------- 11. near-singular DCDM
def test_dcdm_treats_a_regularised_neumann_matrix_as_nonsingular(model):
    ny, nx = 12, 14
    L = poisson(ny, nx, neumann=True)
    A = sp.csr_array(L + 1e-12 * sp.eye(ny * nx))
    assert GridStencil.from_matrix(L, (ny, nx)).null_space().count == 1
    assert GridStencil.from_matrix(A, (ny, nx)).null_space().count == 0
    b = np.random.default_rng(0).standard_normal(ny * nx) + 1.0
    res = model.solve(A, b, shape=(ny, nx), rtol=1e-8, maxiter=40)  # was: "inconsistent" ValueError
    h = res.residual_history
    assert not res.converged
    assert h[-1] > h[0] and "residual of x0" in res.message, res.message  # worse than x0, and it says so


def test_jacobi_spectral_radius_refuses_a_large_nonsymmetric_matrix():
    n = 46  # 2116 rows: past the dense path, where ARPACK gave run-to-run different values
    A = poisson(n)
    C = sp.csr_array(A + 0.4 * sp.diags_array([np.ones(n * n - 1), -np.ones(n * n - 1)], offsets=[1, -1]))
    with pytest.raises(ValueError, match="nonsymmetric.*spectral_radius="):
        jacobi_spectral_radius(C)
    assert 0.99 < jacobi_spectral_radius(A) < 1.0  # symmetric: Lanczos, as before


def test_gmres_without_the_true_residual_check_spends_no_extra_product():
    A = poisson(10) + 0.3 * sp.eye(100)
    b = np.random.default_rng(2).standard_normal(100)
    counts = {}
    for check in (True, False):
        calls = [0]

        def matvec(v, calls=calls):
            calls[0] += 1
            return A @ v

        res = gmres(matvec, b, rtol=1e-8, true_residual=check)
        assert res.converged
        counts[check] = calls[0]
    assert counts[False] == counts[True] - 1  # Newton–Krylov judges its steps itself: no extra product


# ----------------------------------------------------------------------------- 12. small ones
def test_bool_maxiter_is_refused():
    with pytest.raises(ValueError, match="maxiter"):
        check_tolerances(1e-6, 0.0, True, 10)
    with pytest.raises(ValueError, match="maxiter"):
        cg(poisson(4), np.ones(16), maxiter=True)


def test_tsallis_inf_accepts_a_system_solved_by_its_initial_guess():
    tuner = TsallisINF(seed=0)
    tuner.select()
    tuner.update(0)  # was: "cost 0.0 is below floor 1.0"
    tuner.select()
    tuner.update(25)
    with pytest.raises(ValueError, match="floor"):
        tuner.select()
        tuner.update(0.5)


def test_relax_cli_marks_totals_of_systems_that_hit_maxiter(tmp_path, capsys):
    from sciml.relax import cli

    folder = tmp_path / "seq"
    folder.mkdir()
    A = poisson(8)
    rng = np.random.default_rng(0)
    for t in range(3):
        sp.save_npz(folder / f"s{t}.npz", sp.csr_matrix(A + 0.1 * t * sp.eye(64)))
        np.save(folder / f"s{t}.rhs.npy", rng.standard_normal(64))
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = [
        str(folder),
        "--out",
        str(tmp_path / "out"),
        "--maxiter",
        "3",
        "--grid-step",
        "0.05",
        "--no-progress",
    ]
    assert cli.main(parser.parse_args(args)) == 0
    out = capsys.readouterr().out
    assert "× best fixed" not in out and "ratios to the best fixed ω are omitted" in out
    assert "not converged on 3 of 3 systems" in out
