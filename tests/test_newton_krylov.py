"""Matrix-free Newton–Krylov for the ESDIRK methods (``jac="krylov"`` / ``NewtonKrylov``)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sciml.problems import ode
from sciml.problems.ode import ODEProblem
from sciml.solvers.ode import reference_solution, solve
from sciml.solvers.ode.esdirk import ESDIRK, KVAERNO5
from sciml.solvers.ode.jacobian import (
    BandedPreconditioner,
    DenseLU,
    JacobianOperator,
    KrylovPreconditioner,
    NewtonKrylov,
)

BANDED = dict(preconditioner=BandedPreconditioner(2, 2))


def _kinetics(y, k):
    a, b, c = y.unbind(-1)
    return torch.stack([-k[0] * a + k[2] * b * c, k[0] * a - k[2] * b * c - k[1] * b * b, k[1] * b * b], -1)


# ------------------------------------------------------------------------------------------ products
def test_jacobian_operator_products_equal_the_dense_jacobian():
    """J v by double-vjp (exact) and, for a field that detaches its input, by differences (≈ 1e-7)."""
    p = ode.brusselator_1d(n=20)
    t = 0.3
    y = p.y0 + 0.1 * torch.sin(torch.arange(40, dtype=torch.float64))

    def f(tt, z):
        return p.rhs(torch.scalar_tensor(tt, dtype=torch.float64), z)

    J = torch.autograd.functional.jacobian(lambda z: f(t, z), y)
    v = torch.randn(40, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    op = JacobianOperator(f, t, y, y.shape)
    assert op.mode == "autodiff"
    torch.testing.assert_close(op.jvp(v), J @ v, rtol=1e-13, atol=1e-10)

    def detached(tt, z):
        return f(tt, z.detach())

    fd = JacobianOperator(detached, t, y, y.shape)
    assert fd.mode == "differences"
    torch.testing.assert_close(fd.jvp(v), J @ v, rtol=1e-5, atol=1e-5 * (J @ v).abs().max().item())
    assert op.products == 1 and fd.products == 1

    class Cube(torch.autograd.Function):  # differentiable once only
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, g):
            return 3 * ctx.saved_tensors[0] ** 2 * g

    once = JacobianOperator(lambda tt, z: -Cube.apply(z), t, y, y.shape)
    torch.testing.assert_close(once.jvp(v), -3 * y**2 * v, rtol=1e-6, atol=1e-6)
    assert once.mode == "differences" and once.products == 1
    constant = JacobianOperator(lambda tt, z: torch.ones_like(z), t, y, y.shape)  # no graph: differences
    assert constant.jvp(v).abs().max() == 0


def test_banded_preconditioner_recovers_the_band_from_coloured_products():
    p = ode.brusselator_1d(n=30)
    y = p.y0

    def f(tt, z):
        return p.rhs(torch.scalar_tensor(tt, dtype=torch.float64), z)

    J = torch.autograd.functional.jacobian(lambda z: f(0.0, z), y).numpy()
    P = BandedPreconditioner(2, 2)
    op = JacobianOperator(f, 0.0, y, y.shape)
    P.update(op)
    assert op.products == 5  # lower + upper + 1 products, whatever n
    hg = 1e-3
    P.factor(hg)
    rhs = torch.linspace(-1, 1, 60, dtype=torch.float64)
    W = np.eye(60) - hg * J
    np.testing.assert_allclose(P.apply(rhs, hg).numpy(), np.linalg.solve(W, rhs.numpy()), rtol=1e-10)
    np.testing.assert_allclose(
        P.apply_transpose(rhs, hg).numpy(), np.linalg.solve(W.T, rhs.numpy()), rtol=1e-10
    )


# ------------------------------------------------------------------------------------------ accuracy
@pytest.mark.parametrize(
    "name,rtol", [("robertson", 1e-6), pytest.param("hires", 1e-7, marks=pytest.mark.slow)]
)
def test_matches_dense_lu_kvaerno5_and_the_radau_reference(name, rtol):
    """Same iteration, LU replaced by GMRES at a forcing tolerance: the solution agrees with the dense-LU
    solve far below the error, both meet the scipy Radau reference, and the work is counted as products."""
    p = ode.get(name)
    ts = torch.tensor(p.t_span, dtype=torch.float64)  # step ends: no dense-output error
    ref = reference_solution(p, ts)
    scale = ref.abs().amax(0).clamp_min(1e-6)
    dense = solve(p, "kvaerno5", rtol=rtol, atol=rtol * 1e-3, saveat=ts)
    krylov = solve(p, "kvaerno5", rtol=rtol, atol=rtol * 1e-3, saveat=ts, jac="krylov")
    for sol in (dense, krylov):
        assert ((sol.ys - ref).abs() / scale).max().item() < 200 * rtol
    assert ((krylov.ys - dense.ys).abs() / scale).max().item() < 20 * rtol
    st = krylov.stats
    assert st.njev == 0 and st.njvp > st.n_newton  # GMRES makes >= 1 product per Newton iteration
    assert abs(st.n_steps - dense.stats.n_steps) <= 0.1 * dense.stats.n_steps
    assert krylov.stiffness_estimates.numel() == 0  # no ‖J‖_∞ without a matrix


def test_convergence_order_is_kept():
    order = KVAERNO5.order
    method = ESDIRK(KVAERNO5, jacobian=NewtonKrylov(), max_newton=30)
    p = ode.forced_linear().replace(t_span=(0.0, 2.0))
    ts = torch.tensor([0.0, 2.0], dtype=torch.float64)
    ref = reference_solution(p, ts)[-1]
    ns = [16, 32]
    errors = [
        (solve(p, method, dt=2.0 / n, saveat=ts, rtol=1e-13, atol=1e-15).ys[-1] - ref).abs().max().item()
        for n in ns
    ]
    slope = -np.polyfit(np.log(ns), np.log(errors), 1)[0]
    assert order - 0.3 < slope < order + 0.8


def _sparsity(n_unknowns: int) -> sp.spmatrix:
    return sp.diags([np.ones(n_unknowns - abs(k)) for k in range(-2, 3)], list(range(-2, 3)))


def _scipy_bdf(p, ts, rtol):
    from scipy.integrate import solve_ivp

    def fun(t, y):
        with torch.no_grad():
            return p.rhs(torch.tensor(t, dtype=torch.float64), torch.from_numpy(y)).numpy()

    n = p.y0.numel()
    sol = solve_ivp(fun, p.t_span, p.y0.numpy(), method="BDF", rtol=rtol, atol=rtol, t_eval=ts.numpy(),
                    jac_sparsity=_sparsity(n))  # fmt: skip
    assert sol.success
    return torch.from_numpy(sol.y.T.copy())


def test_brusselator_mol_banded_matches_dense_lu():
    """500 unknowns: GMRES preconditioned by the exact band converges in one iteration per Newton step."""
    p = ode.brusselator_1d(n=250)
    ts = torch.linspace(0.0, 10.0, 3, dtype=torch.float64)
    with torch.no_grad():
        dense = solve(p, "kvaerno5", rtol=1e-5, atol=1e-5, saveat=ts)
        banded = solve(p, "kvaerno5", rtol=1e-5, atol=1e-5, saveat=ts, jac=NewtonKrylov(**BANDED))
    torch.testing.assert_close(banded.ys, dense.ys, rtol=0, atol=1e-5)
    st = banded.stats
    assert st.njev == 0 and st.njvp < 2.5 * st.n_newton  # ~1 product per Newton iteration + the bands


@pytest.mark.slow
def test_brusselator_mol_with_ten_thousand_unknowns_matches_scipy_bdf():
    """2 × 5000 unknowns: a dense Jacobian (0.75 GiB) is refused; matrix-free with the banded preconditioner
    solves it, and agrees with scipy BDF (sparse Jacobian) at a tight tolerance."""
    p = ode.brusselator_1d(n=5000)
    ts = torch.linspace(0.0, 10.0, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="dense Jacobian of 10000 unknowns"):
        solve(p, "kvaerno5", rtol=1e-6, atol=1e-6)
    ref = _scipy_bdf(p, ts, 1e-10)
    with torch.no_grad():
        sol = solve(p, "kvaerno5", rtol=1e-7, atol=1e-7, saveat=ts, jac=NewtonKrylov(**BANDED))
    assert ((sol.ys - ref).abs() / ref.abs().amax(0)).max().item() < 1e-5
    assert sol.stats.njev == 0 and sol.stats.njvp > 0


def test_user_preconditioner_diffusion_only():
    """A callable ``P(v, hg)``: the diffusion part alone, solved by a dense tridiagonal-block LU here; it
    cuts GMRES's products against no preconditioner and gives the same solution."""
    n, alpha = 50, 0.02
    p = ode.brusselator_1d(n=n, alpha=alpha)
    c = alpha * (n + 1) ** 2
    L = (
        torch.diag(torch.full((n,), -2.0))
        + torch.diag(torch.ones(n - 1), 1)
        + torch.diag(torch.ones(n - 1), -1)
    )
    L = c * L.double()
    calls = []

    def diffusion(v, hg):
        calls.append(hg)
        uv = v.reshape(n, 2)
        return torch.linalg.solve(torch.eye(n, dtype=torch.float64) - hg * L, uv).reshape(v.shape)

    ts = torch.tensor([0.0, 1.0], dtype=torch.float64)
    p = p.replace(t_span=(0.0, 1.0))
    with torch.no_grad():
        plain = solve(p, "kvaerno5", rtol=1e-5, atol=1e-5, saveat=ts, jac="krylov")
        pre = solve(
            p, "kvaerno5", rtol=1e-5, atol=1e-5, saveat=ts, jac=NewtonKrylov(preconditioner=diffusion)
        )
    assert calls and pre.stats.njvp < 0.5 * plain.stats.njvp
    torch.testing.assert_close(pre.ys, plain.ys, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize(
    "options", [{}, {"preconditioner": BandedPreconditioner(2, 2)}], ids=["plain", "banded"]
)
def test_gradcheck_matrix_free_implicit_function_theorem(options):
    """The stage derivative solves (I − hγJ)ᵀ v = g by GMRES with vector–Jacobian products: gradients of the
    solution and of the error regularizer Σ E_j |h_j| match finite differences (float64)."""
    k = torch.tensor([0.04, 30.0, 10.0], dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([1.0, 0.1, 0.05], dtype=torch.float64, requires_grad=True)

    def output(y0, k):
        p = ODEProblem(lambda t, y, k: _kinetics(y, k), y0, (0.0, 0.1), k)
        nk = NewtonKrylov(**options, backward_rtol=1e-13, forcing=1e-3)
        method = ESDIRK(KVAERNO5, jacobian=nk, max_newton=30, newton_kappa=1e-6)
        sol = solve(p, method, dt=0.1, rtol=1e-9, atol=1e-11)
        return sol.ys[-1], (sol.error_estimates * sol.step_sizes.abs().to(y0)).sum()

    assert torch.autograd.gradcheck(output, (y0, k), eps=1e-4, atol=1e-6, rtol=1e-4)


def test_gradients_match_the_dense_path_and_the_continuous_adjoint():
    """The continuous adjoint's augmented field detaches its input: products by differences there."""
    k = torch.tensor([0.04, 3.0, 1.0], dtype=torch.float64, requires_grad=True)
    p = ODEProblem(lambda t, y, k: _kinetics(y, k), torch.tensor([1.0, 0.0, 0.0]).double(), (0.0, 2.0), k)
    grads = {}
    for jac, adjoint in ((None, "backprop"), ("krylov", "backprop"), ("krylov", "continuous")):
        sol = solve(p, "kvaerno5", rtol=1e-8, atol=1e-11, jac=jac, adjoint=adjoint, adjoint_params=(k,))
        grads[jac, adjoint] = torch.autograd.grad(sol.ys[-1, 1], k)[0]
    base = grads[None, "backprop"]
    torch.testing.assert_close(grads["krylov", "backprop"], base, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(grads["krylov", "continuous"], base, rtol=1e-4, atol=1e-10)


def test_adaptive_gradients_with_the_banded_preconditioner_match_the_dense_path():
    """Adaptive steps: the backward pass's transposed solves meet many hγ; the banded preconditioner is
    refactorised for each, and the gradient with respect to the diffusion coefficient is the dense one."""
    p = ode.brusselator_1d(n=8).replace(t_span=(0.0, 0.5))
    grads = []
    for jac in (None, NewtonKrylov(preconditioner=BandedPreconditioner(2, 2))):
        alpha = torch.tensor(0.02, dtype=torch.float64, requires_grad=True)
        sol = solve(p.replace(params=alpha), "kvaerno5", rtol=1e-7, atol=1e-7, jac=jac)
        grads.append(torch.autograd.grad(sol.ys[-1].square().sum(), alpha)[0])
    assert sol.stats.n_accepted > 3
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-6, atol=1e-10)


# ------------------------------------------------------------------------------------------ options
def test_bad_options_give_clear_errors():
    p = ode.robertson()
    for method in ("rodas5p", "radau5", "auto", "rosenbrock23"):
        with pytest.raises(ValueError, match="ESDIRK"):
            solve(p, method, jac="krylov")
        with pytest.raises(ValueError, match="ESDIRK"):
            solve(p, method, jac=NewtonKrylov())
    with pytest.raises(ValueError, match="restart"):
        NewtonKrylov(restart=0)
    with pytest.raises(ValueError, match="forcing"):
        NewtonKrylov(forcing=1.5)
    with pytest.raises(ValueError, match="backward_rtol"):
        NewtonKrylov(backward_rtol=0.0)
    with pytest.raises(TypeError, match="preconditioner"):
        NewtonKrylov(preconditioner=3)
    with pytest.raises(ValueError, match="lower"):
        BandedPreconditioner(-1, 2)
    with pytest.raises(ValueError, match="linear_solver"):
        ESDIRK(KVAERNO5, jacobian=NewtonKrylov(), linear_solver=DenseLU())
    with pytest.raises(ValueError, match="Jacobian option"):
        ESDIRK(KVAERNO5, linear_solver=NewtonKrylov())
    with pytest.raises(ValueError, match="same shape"):
        solve(p, "kvaerno5", jac=NewtonKrylov(preconditioner=lambda v, hg: v.reshape(-1, 1)))
    with pytest.raises(ValueError, match="krylov"):
        solve(p, "kvaerno5", jac="gmres")
    assert isinstance(BandedPreconditioner(1, 1), KrylovPreconditioner)
