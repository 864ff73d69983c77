"""``method="auto"`` starts Rodas5P afresh with each integration (the continuous adjoint's backward field
keeps nothing of the forward field's Jacobian or autonomy probe) and reports Rodas5P's autonomy probe as
``method="rodas5p"`` does, which is what the continuous adjoint reads."""

import torch
from sciml.solvers.ode.auto import AutoSwitch


def test_begin_starts_rodas5p_afresh():
    method = AutoSwitch().for_solve()
    method.stiff._time_mode, method.stiff._J = "ad", torch.zeros(2, 2)  # the state of another field
    method.stiff._point = (0.0, torch.zeros(2))
    method.begin(1e-6, 1e-9)
    assert method.stiff._time_mode is None and method.stiff._J is None and method.stiff._point is None


def test_it_reports_rodas5ps_autonomy_probe():
    method = AutoSwitch().for_solve()
    assert not method.found_autonomous
    method.stiff._time_mode = "autonomous"
    assert method.found_autonomous
