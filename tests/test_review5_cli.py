"""Review 5 of ``sciml pde``: a ``--problem FILE.py:FUNCTION`` file is loaded as Python runs it (modules
beside it, dataclasses), the package's TypeErrors about a user's problem are one line, and ``--resume`` with a
larger budget says that a stored run is not extended."""

import textwrap

import pytest

from sciml.cli import main
from sciml.pinn.cli import _load_problem

pytestmark = pytest.mark.usefixtures("one_thread")

#: a heat problem on [0, 1] × [0, 0.5] whose initial value is ``INITIAL``
HEAT = """
import sciml.problems.pde as pde

def heat():
    return pde.PDEProblem(name="h", domain=pde.Interval(0, 1).times(0, 0.5), fields=("u",),
        residual=lambda x, d, p: d["u_t"] - p["D"] * d["u_xx"], params={"D": D},
        conditions=(pde.Dirichlet(value=0.0), pde.InitialValue(value=INITIAL)))
"""


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_problem_file_imports_the_modules_beside_it(tmp_path):
    _write(tmp_path / "mine" / "review5_helper.py", "import torch\ndef u0(x): return torch.sin(x[:, 0])\n")
    file = _write(tmp_path / "mine" / "uses.py", "from review5_helper import u0 as INITIAL\nD = 0.1\n" + HEAT)
    for _ in range(2):  # a second load runs the file anew
        assert _load_problem(f"{file}:heat").params == {"D": 0.1}


def test_problem_file_defines_a_dataclass_under_future_annotations(tmp_path):
    dataclass = "from __future__ import annotations\nimport dataclasses\n@dataclasses.dataclass\nclass M:\n"
    file = _write(tmp_path / "dc.py", dataclass + "    D: float = 0.2\nD = M().D\nINITIAL = 1.0\n" + HEAT)
    for _ in range(2):
        assert _load_problem(f"{file}:heat").params == {"D": 0.2}


def test_package_type_error_about_the_problem_is_one_line(tmp_path, capsys, monkeypatch):
    numpy_value = "import numpy as np\nD = 0.1\nINITIAL = lambda x: np.sin(x[:, 0])\n" + HEAT
    file = _write(tmp_path / "np_value.py", numpy_value)
    argv = ["pde", "--no-progress", "--adam", "5", "--lbfgs", "0", "--out", str(tmp_path / "run")]
    assert main([*argv, "--problem", f"{file}:heat"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert "calls numpy on the points" in err and "torch.sin" in err and "SCIML_DEBUG=1" in err, err
    monkeypatch.setenv("SCIML_DEBUG", "1")  # the traceback on demand, down to the package's TypeError
    with pytest.raises(ValueError, match="calls numpy") as info:
        main([*argv, "--problem", f"{file}:heat"])
    assert isinstance(info.value.__cause__, TypeError)
    monkeypatch.delenv("SCIML_DEBUG")
    # a TypeError of the user's own code keeps its traceback (where it is in the file)
    own = _write(tmp_path / "own.py", "import torch\nD = 0.1\nINITIAL = lambda x: torch.sin('x')\n" + HEAT)
    with pytest.raises(TypeError, match="must be Tensor"):
        main([*argv, "--problem", f"{own}:heat"])


def test_resume_with_a_larger_budget_says_to_start_a_new_run(tmp_path, capsys):
    file = _write(tmp_path / "bar.py", "D = 0.1\nINITIAL = 1.0\n" + HEAT)
    argv = ["pde", "--problem", f"{file}:heat", "--no-progress", "--lbfgs", "0"]
    argv += ["--out", str(tmp_path / "run")]
    assert main([*argv, "--adam", "5"]) == 0  # the generic preset logs every iteration (5 // 20 < 1)
    capsys.readouterr()
    assert main([*argv, "--adam", "40", "--resume"]) == 2  # ... and every 2nd of 40 (40 // 20)
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert "config.adam_iterations: 5 in the checkpoint, 40 now" in err, err
    assert "cannot be extended" in err and "drop --resume and pass another --out" in err, err
    assert "eval_every" not in err and "--eval-every" not in err, err  # derived from the budget, not given


def test_history_plot_shows_the_fitted_unknowns(monkeypatch, tmp_path):
    import sciml.checkpoint
    from sciml.pinn.cli import plot_history

    figures = []
    monkeypatch.setattr(sciml.checkpoint, "save_figure", lambda fig, path, dpi=None: figures.append(fig))
    history = [
        {"iteration": i, "phase": "adam", "loss": 1.0 / (i + 1), "rel_l2": None, "residual_rms": 1.0,
         "residual_max": 2.0, "coef_k": 0.5 + 0.1 * i, "coef_D": -1.0}
        for i in (0, 10)
    ]  # fmt: skip
    plot_history(tmp_path / "h.png", history, "inverse")
    panel = figures[0].axes[2]
    assert panel.get_ylabel() == "fitted unknowns"
    lines = {line.get_label(): line.get_ydata().tolist() for line in panel.get_lines()}
    assert lines == {"D": [-1.0, -1.0], "k": [0.5, 1.5]}
    plot_history(
        tmp_path / "h.png", [{k: v for k, v in h.items() if not k.startswith("coef_")} for h in history], ""
    )
    assert len(figures[1].axes) == 2  # a forward problem: two panels, as before


def test_fields_h5_holds_a_scattered_reference_and_the_model_there(tmp_path):
    import h5py
    import numpy as np

    file = _write(tmp_path / "ref.py", "D = 0.1\nINITIAL = 1.0\n" + HEAT)
    points = np.random.default_rng(0).uniform([0.0, 0.0], [1.0, 0.5], (50, 2))
    np.savez(tmp_path / "ref.npz", points=points, values=np.exp(-points[:, 1]) * np.sin(np.pi * points[:, 0]))
    out = tmp_path / "run"
    argv = ["pde", "--problem", f"{file}:heat", "--no-progress", "--adam", "5", "--lbfgs", "0"]
    assert main([*argv, "--reference", str(tmp_path / "ref.npz"), "--out", str(out)]) == 0
    with h5py.File(out / "fields.h5") as f:
        group = {k: f["reference_points"][k][:] for k in ("points", "values", "prediction", "error")}
        reported = f.attrs["rel_l2"]
    np.testing.assert_allclose(np.sort(group["points"], axis=0), np.sort(points, axis=0))
    np.testing.assert_allclose(group["error"], group["prediction"] - group["values"])
    assert np.linalg.norm(group["error"]) / np.linalg.norm(group["values"]) == pytest.approx(
        reported, rel=1e-9
    )
