"""Review 5: a problem's fingerprint sees a moved localized source; ``params`` and ``Observations`` inputs are
checked with messages that name the argument and the fix."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sciml.problems.pde as pde
import torch


def _hot(x0: float = 0.5, y0: float = 0.0, width: float = 0.05, params: dict | None = None) -> pde.PDEProblem:
    """Steady heat on the unit disk with a narrow Gaussian source at (x0, y0)."""

    def residual(x, d, p):
        src = 50.0 * torch.exp(-((x[:, 0] - x0) ** 2 + (x[:, 1] - y0) ** 2) / (2 * width**2))
        return d["u_xx"] + d["u_yy"] + src

    return pde.PDEProblem(
        name="hot-disk", domain=pde.Disk((0, 0), 1.0), fields=("u",), residual=residual,
        conditions=(pde.Dirichlet(value=0.0, name="wall"),), constraint="auto", params=params or {},
    )  # fmt: skip


def test_fingerprint_sees_a_moved_narrow_source_and_is_the_same_in_another_process():
    base = _hot().fingerprint()
    assert base == _hot().fingerprint()
    moved = [_hot(-0.5), _hot(0.5, 0.3), _hot(0.0, -0.6), _hot(0.5, width=0.06)]
    assert all(p.fingerprint() != base for p in moved)
    assert len(json.dumps(base)) < 4000  # compact: hashes, not the probed values
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "from test_review5_problem_inputs import _hot; print(json.dumps(_hot().fingerprint()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == json.loads(json.dumps(base))


def test_params_must_be_finite_real_numbers():
    for good in (1, 1e-3, np.float64(0.5), np.int64(2), torch.tensor(0.1), np.array([1.0, 2.0]), torch.sin):
        _hot(params={"D": good})
    _hot(params={"D": torch.tensor(0.1, requires_grad=True)})
    for bad in ("1e-3", None, math.nan, math.inf, 1 + 2j, True, [1.0], torch.tensor([0.1, math.nan])):
        with pytest.raises(
            ValueError, match=r"params\['D'\].*not a finite real number.*params=\{'D': 0.001\}"
        ):
            _hot(params={"D": bad})
    with pytest.raises(ValueError, match=r"params\['D'\] = '0.2' \(str\).*params=\{'D': 0.2\}"):
        _hot(params={"D": 0.1}).replace(params={"D": "0.2"})


def test_observations_transposed_points_and_string_values_are_named():
    pts = np.random.default_rng(0).uniform(-0.5, 0.5, (20, 2))
    with pytest.raises(ValueError, match=r"`points`.*\(2, 20\).*transpose.*points\.T"):
        pde.Observations(points=pts.T, values=np.ones(20), name="sensors")
    with pytest.raises(ValueError, match=r"`points`.*\(2, 20\).*transpose.*points\.T"):
        pde.Observations(points=torch.as_tensor(pts.T), values=np.ones((20, 1)), name="sensors")
    with pytest.raises(ValueError, match=r"'sensors': `values` must be numbers.*got str"):
        pde.Observations(points=pts, values="1.0 2.0", name="sensors")
    with pytest.raises(ValueError, match=r"'sensors': `values` must be numbers.*got str"):
        pde.Observations(points=pts[:1], values="1.0", name="sensors")
    point = pde.PointCondition(points=pts.T, operator=lambda x, d, p: d["u"], name="at")
    with pytest.raises(ValueError, match=r"`points` must be \(m, 2\).*\(2, 20\).*transpose.*points\.T"):
        _hot().replace(conditions=(pde.Dirichlet(value=0.0, name="wall"), point))


def test_fingerprint_tells_apart_the_field_of_many_observations():
    """More observation points than the probes: the condition is still probed (all its points), so
    observations of u and of v differ."""

    def two_fields(field: str) -> pde.PDEProblem:
        points = np.random.default_rng(0).uniform(-0.5, 0.5, (1000, 2))
        return pde.PDEProblem(
            name="two", domain=pde.Disk((0, 0), 1.0), fields=("u", "v"),
            residual=lambda x, d, p: torch.stack([d["u_xx"] + d["u_yy"], d["v_xx"] + d["v_yy"]], 1),
            conditions=(pde.Dirichlet(value=0.0, field="u", name="wu"),
                        pde.Dirichlet(value=0.0, field="v", name="wv"),
                        pde.Observations(points=points, values=np.ones(1000), field=field)),
        )  # fmt: skip

    u, v = two_fields("u").fingerprint(), two_fields("v").fingerprint()
    assert "raises" not in json.dumps(u)
    assert u != v


def _decay(std) -> pde.PDEProblem:
    """u' = −k u, u(0) = 1 (true k = 2), seen at 20 points of which every 4th is off by 0.3."""
    x = np.linspace(0.05, 1.0, 20)[:, None]
    values = np.exp(-2.0 * x[:, 0]) + 0.3 * (np.arange(20) % 4 == 0)
    return pde.PDEProblem(
        name="decay", domain=pde.Interval(0.0, 1.0), fields=("u",),
        residual=lambda x, d, p: d["u_x"] + p["k"] * d["u"], params={"k": 2.0},
        conditions=(pde.Dirichlet(value=1.0, on="x-"), pde.Observations(points=x, values=values, std=std)),
    )  # fmt: skip


def test_observations_with_per_point_std_discount_the_noisy_sensors():
    from sciml.pinn import PINN, TrainConfig, Trainer

    config = TrainConfig(adam_iterations=300, lbfgs_iterations=100, lr=1e-2, n_residual=64, n_condition=8)
    fitted = {}
    for label, std in (("alike", None), ("per point", np.where(np.arange(20) % 4 == 0, 10.0, 0.01))):
        model = PINN(1, 1, hidden=(16, 16), generator=torch.Generator().manual_seed(0))
        result = Trainer(_decay(std), model, config, unknowns={"k": 0.5}).fit(progress=False)
        fitted[label] = result.unknowns["k"]
    assert abs(fitted["per point"] - 2.0) < 0.05, fitted  # the off sensors count 1e6 times less
    assert abs(fitted["alike"] - 2.0) > 0.2, fitted  # ... and bias the fit when they count alike


def test_observations_std_is_checked_and_keys_the_fingerprint():
    for bad in (0.0, -1.0, math.nan, np.ones(3), "0.1"):
        with pytest.raises(ValueError, match=r"`std` must be one positive finite number or 20 of them"):
            _decay(bad)
    assert _decay(0.1).fingerprint() != _decay(0.2).fingerprint() != _decay(None).fingerprint()
    np.testing.assert_array_equal(_decay(torch.tensor(0.5)).conditions[1].std, np.full(20, 0.5))  # (a tensor)
