"""High-accuracy reference solutions for problems without a closed form: scipy's DOP853 at rtol 1e-13
(Radau at 1e-12 for stiff problems), cached in HDF5 with the problem's name, parameters, initial state and
times (see :mod:`sciml.solvers.cache`)."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sciml.problems.ode import ODEProblem
from sciml.solvers.cache import cached_arrays, callable_fingerprint
from scipy.integrate import solve_ivp

__all__ = ["reference_solution"]


def _jsonable(value):
    if torch.is_tensor(value):
        return value.detach().cpu().double().tolist()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    raise TypeError


def reference_solution(
    problem: ODEProblem,
    ts: torch.Tensor,
    *,
    use_cache: bool = True,
    cache_version: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> torch.Tensor:
    """The solution of ``problem`` at ``ts`` (``(len(ts), *y0.shape)``, y0's dtype/device).

    The exact solution when the problem has one; otherwise scipy DOP853 (rtol 1e-13, atol 1e-13) or, for
    problems marked stiff, Radau (rtol 1e-12, atol 1e-14, with the exact Jacobian by reverse-mode AD),
    cached on disk keyed by everything it depends on: the vector field's fingerprint
    (:func:`~sciml.solvers.cache.callable_fingerprint`: its code, the values it closes over and the
    module-level values it reads), its parameters, ``y0``, the times, the method and the tolerances.

    Args:
        problem: the problem.
        ts: the output times.
        use_cache: read and write the HDF5 cache.
        cache_version: a string that identifies the vector field, for fields whose fingerprint cannot be
            determined (e.g. they read attributes of arbitrary objects); change it when the field changes.
            Without it such a field's reference is computed afresh every time (with a warning).
        rtol, atol: override the tolerances above (e.g. E5's tiny concentrations need atol ≲ 1e-24).

    Raises:
        RuntimeError: scipy's solve fails.
    """
    y0 = problem.y0
    if problem.exact is not None:
        return problem.solution(ts)
    shape = y0.shape
    t_eval = ts.detach().cpu().double().numpy()
    method, rtol_, atol_ = ("Radau", 1e-12, 1e-14) if problem.stiff else ("DOP853", 1e-13, 1e-13)
    rtol = rtol_ if rtol is None else float(rtol)
    atol = atol_ if atol is None else float(atol)

    def fun(t, y):
        with torch.no_grad():
            dy = problem.rhs(torch.tensor(t, dtype=torch.float64), torch.from_numpy(y).view(shape))
        return dy.double().numpy().ravel()

    def jac(t, y):
        from sciml.solvers.ode.jacobian import AutodiffJacobian

        def f(tt, z):
            return problem.rhs(torch.tensor(tt, dtype=torch.float64), z)

        with torch.no_grad():
            z = torch.from_numpy(y)
            return AutodiffJacobian()(f, t, z, shape, z).matrix.numpy()

    def compute():
        extra = {"jac": jac} if method == "Radau" else {}
        sol = solve_ivp(
            fun, problem.t_span, y0.detach().cpu().double().numpy().ravel(), method=method, t_eval=t_eval,
            rtol=rtol, atol=atol, dense_output=False, **extra,
        )  # fmt: skip
        if not sol.success:
            raise RuntimeError(f"reference solve of {problem.name!r} failed: {sol.message}")
        return {"ys": sol.y.T}

    field = cache_version if cache_version is not None else callable_fingerprint(problem.f)
    try:
        key = {
            "problem": problem.name, "field": field, "params": _jsonable(problem.params), "y0": _jsonable(y0),
            "t_span": list(problem.t_span), "ts": t_eval.tolist(), "method": method, "rtol": rtol,
            "atol": atol,
        }  # fmt: skip
    except TypeError:
        field = None
    if use_cache and field is None:
        warnings.warn(
            f"the reference of {problem.name!r} is not cached: its vector field (or params) cannot be "
            "fingerprinted; pass cache_version='...' to cache it",
            stacklevel=2,
        )
        use_cache = False
    arrays = cached_arrays(f"ode-{problem.name}", key, compute) if use_cache else compute()
    ys = np.asarray(arrays["ys"]).reshape(len(t_eval), *shape)
    return torch.as_tensor(ys, dtype=y0.dtype, device=y0.device)
