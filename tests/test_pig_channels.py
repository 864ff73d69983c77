"""PIG with ``channels="separate"``: each of the k features has its own N Gaussians (the authors' code)."""

import pytest
import torch
from sciml.problems.pde.derivatives import AutogradDerivatives

from sciml.pinn import PIG, derivatives
from sciml.pinn.derivatives import JetDerivatives


def _separate(full: bool = False) -> PIG:
    g = torch.Generator().manual_seed(3)
    model = PIG(
        2, 1, 5, feature_dim=3, hidden=4, sigma=0.4, channels="separate", full_covariance=full,
        lower=(0, -1), upper=(2, 1), generator=g,
    )  # fmt: skip
    if full:
        with torch.no_grad():
            model.offdiag.normal_(0, 0.3, generator=g)
    return model.double()


def test_each_channel_sums_only_its_own_gaussians():
    model = _separate()
    assert model.n_gaussians == 15 and model.weights.shape == (15,) and model.means.shape == (15, 2)
    x = torch.rand(11, 2, dtype=torch.float64) * torch.tensor([2.0, 2.0]) - torch.tensor([0.0, 1.0])
    h = (x - torch.tensor([1.0, 0.0])) / torch.tensor([1.0, 1.0])
    scale = torch.exp(-model.log_inv_scale)
    phi = torch.exp(-0.5 * (((h[:, None, :] - model.means) / scale) ** 2).sum(-1))  # (11, 15)
    direct = torch.stack([phi[:, 5 * c : 5 * c + 5] @ model.weights[5 * c : 5 * c + 5] for c in range(3)], 1)
    torch.testing.assert_close(model.features(x), direct)
    # moving a Gaussian of channel 1 changes feature 1 only
    before = model.features(x)
    with torch.no_grad():
        model.means[7] += 0.2
    delta = (model.features(x) - before).abs().amax(0)
    assert delta[1] > 1e-6 and delta[0] == 0 and delta[2] == 0


@pytest.mark.parametrize("full", [False, True])
def test_separate_channel_jets_equal_autograd(full):
    model = _separate(full)
    x = torch.rand(30, 2, dtype=torch.float64) * torch.tensor([2.0, 2.0]) - torch.tensor([0.0, 1.0])
    keys = {(0, dims) for dims in [(), (0,), (1,), (0, 0), (1, 1)]}
    fast = derivatives(model, x, ("x", "y"), ("u",), keys)
    slow = AutogradDerivatives(model, x, ("x", "y"), ("u",))
    assert isinstance(fast, JetDerivatives)
    for key in ("u", "u_x", "u_y", "u_xx", "u_yy"):
        torch.testing.assert_close(fast[key], slow[key], rtol=1e-11, atol=1e-11, msg=key)
    params = [p for p in model.parameters() if p.requires_grad]
    lf = (fast["u_xx"] + fast["u_yy"] * fast["u"]).square().mean()
    ls = (slow["u_xx"] + slow["u_yy"] * slow["u"]).square().mean()
    for a, b in zip(torch.autograd.grad(lf, params), torch.autograd.grad(ls, params)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_unknown_channels_is_refused():
    with pytest.raises(ValueError, match="channels"):
        PIG(2, 1, 4, channels="tied")
