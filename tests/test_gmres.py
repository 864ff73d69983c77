"""GMRES(m) against direct solves and scipy on nonsymmetric (convection–diffusion) systems."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from sciml.solvers.linear import SolveStatus, gmres


def _convection_diffusion(n: int, peclet: float = 50.0) -> sp.csr_matrix:
    """``−u'' + Pe u'`` on (0, 1), central differences, Dirichlet: nonsymmetric, cell Péclet < 2 at n=200."""
    h = 1.0 / (n + 1)
    lower = -1 / h**2 - peclet / (2 * h)
    upper = -1 / h**2 + peclet / (2 * h)
    return sp.diags([lower, 2 / h**2, upper], [-1, 0, 1], shape=(n, n)).tocsr()


def _rhs(n: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(n)


@pytest.mark.parametrize("restart", [5, 30, 200])
def test_matches_the_direct_solve_and_scipy(restart):
    A, b = _convection_diffusion(200), _rhs(200)
    exact = np.linalg.solve(A.toarray(), b)
    res = gmres(A, b, rtol=1e-10, restart=restart, maxiter=20_000)
    assert res.converged and res.status is SolveStatus.CONVERGED
    assert np.linalg.norm(b - A @ res.x) <= 1e-10 * np.linalg.norm(b) * 1.01
    assert np.abs(res.x - exact).max() < 1e-6 * np.abs(exact).max()
    assert res.residual_history[0] == pytest.approx(np.linalg.norm(b))
    assert len(res.residual_history) == res.iterations + 1
    ref, info = spla.gmres(A, b, rtol=1e-10, atol=0.0, restart=restart, maxiter=20_000)
    assert info == 0
    assert np.abs(res.x - ref).max() < 1e-6 * np.abs(exact).max()
    if restart >= 200:  # unrestarted: GMRES's minimal residual in at most n steps, like scipy's count
        counts = []
        spla.gmres(A, b, rtol=1e-10, atol=0.0, restart=restart, callback=counts.append,
                   callback_type="pr_norm")  # fmt: skip
        assert abs(res.iterations - len(counts)) <= 2


def test_right_preconditioner_cuts_iterations_and_keeps_the_true_residual_test():
    A, b = _convection_diffusion(200), _rhs(200)
    exact = np.linalg.solve(A.toarray(), b)
    plain = gmres(A, b, rtol=1e-10, restart=30, maxiter=20_000)
    ilu = spla.spilu(A.tocsc(), drop_tol=1e-3)
    pre = gmres(A, b, rtol=1e-10, restart=30, M=spla.LinearOperator(A.shape, ilu.solve))
    assert pre.converged and pre.iterations <= 3 < plain.iterations
    # right preconditioning: the reported residual is b − A x, not M(b − A x)
    assert np.linalg.norm(b - A @ pre.x) <= 1e-10 * np.linalg.norm(b) * 1.01
    assert np.abs(pre.x - exact).max() < 1e-8 * np.abs(exact).max()
    # a rough Jacobi preconditioner (a callable) still converges to the same solution
    d = A.diagonal()
    jac = gmres(A, b, rtol=1e-10, restart=30, M=lambda v: v / d, maxiter=20_000)
    assert jac.converged and np.abs(jac.x - exact).max() < 1e-6 * np.abs(exact).max()


def test_torch_fields_of_any_shape_and_warm_start():
    A = torch.from_numpy(_convection_diffusion(200).toarray())
    b = torch.from_numpy(_rhs(200)).reshape(10, 20)
    exact = torch.linalg.solve(A, b.reshape(-1)).reshape(10, 20)

    def op(v):
        return (A @ v.reshape(-1)).reshape(10, 20)

    res = gmres(op, b, rtol=1e-10, restart=50, maxiter=10_000)
    assert res.converged and torch.is_tensor(res.x) and res.x.shape == (10, 20)
    torch.testing.assert_close(res.x, exact, rtol=1e-7, atol=1e-7 * exact.abs().max().item())
    warm = gmres(op, b, x0=res.x, rtol=1e-10, restart=50)
    assert warm.iterations == 0 and "initial guess" in warm.message
    single = gmres(A.float(), b.reshape(-1).float(), rtol=1e-4, restart=200)  # float32, a dense tensor
    assert single.converged and single.x.dtype == torch.float32


def test_lucky_breakdown_gives_the_exact_solution_in_k_steps():
    """``A`` with 3 distinct eigenvalues: the Krylov space is invariant after 3 steps (k < m) and holds the
    solution."""
    S = np.eye(30) + 0.1 * np.random.default_rng(1).standard_normal((30, 30))  # nonsymmetric similarity
    A = S @ np.diag(np.repeat([1.0, 2.0, 5.0], 10)) @ np.linalg.inv(S)
    b = _rhs(30)
    res = gmres(A, b, rtol=1e-13, restart=20)
    assert res.converged and res.iterations == 3
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-10, atol=1e-12)


def test_max_iterations_stagnation_and_breakdown_statuses():
    A, b = _convection_diffusion(200), _rhs(200)
    res = gmres(A, b, rtol=1e-12, restart=5, maxiter=7)
    assert res.status is SolveStatus.MAX_ITERATIONS and not res.converged and res.iterations == 7
    assert "maxiter" in res.message
    # the cyclic shift with b = e_1: restarted GMRES(m < n) makes no progress at all
    n = 10
    shift = np.roll(np.eye(n), 1, axis=0)
    e1 = np.eye(n)[0]
    stuck = gmres(shift, e1, rtol=1e-8, restart=3)
    assert stuck.status is SolveStatus.STAGNATION and "restart" in stuck.message
    full = gmres(shift, e1, rtol=1e-8, restart=n)
    assert full.converged and np.allclose(shift @ full.x, e1)
    # a singular system whose right-hand side is not in the range
    singular = gmres(np.diag([1.0, 0.0]), np.array([1.0, 1.0]), rtol=1e-10)
    assert singular.status is SolveStatus.STAGNATION and "singular" in singular.message


def test_non_finite_operator_is_reported():
    res = gmres(lambda v: v * np.inf, np.ones(4))
    assert res.status is SolveStatus.NON_FINITE and not res.converged


def test_bad_input_names_the_argument():
    A, b = _convection_diffusion(20), _rhs(20)
    with pytest.raises(ValueError, match="restart"):
        gmres(A, b, restart=0)
    with pytest.raises(ValueError, match="rtol"):
        gmres(A, b, rtol=-1.0)
    with pytest.raises(ValueError, match="both 0"):
        gmres(A, b, rtol=0.0, atol=0.0)
    with pytest.raises(ValueError, match="`M`"):
        gmres(A, b, M=np.eye(3))
    with pytest.raises(ValueError, match="`x0`"):
        gmres(A, b, x0=np.ones(3))
    with pytest.raises(TypeError, match="torch"):
        gmres(A, torch.from_numpy(b))
    with pytest.raises(ValueError, match="non-finite"):
        gmres(A, np.full(20, np.nan))
