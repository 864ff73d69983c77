"""The install adds one import package, ``sciml``, mapped from the repository's three folders."""

import pathlib
import subprocess
import sys

import pytest

import sciml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _folder_packages() -> set[str]:
    names = set()
    for root in ("sciml", "problems", "solvers"):
        for init in (ROOT / root).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT).parts
            names.add(".".join(parts) if root == "sciml" else "sciml." + ".".join(parts))
    return names


@pytest.mark.skipif(not (ROOT / "problems").is_dir(), reason="run from an installed wheel, not a checkout")
def test_pyproject_lists_every_package_folder():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(config["packages"]) == _folder_packages()
    assert config["package-dir"] == {"sciml.problems": "problems", "sciml.solvers": "solvers"}


def test_user_modules_named_problems_and_solvers_change_nothing(tmp_path):
    (tmp_path / "problems.py").write_text("raise RuntimeError('the user module was imported')\n")
    (tmp_path / "solvers.py").write_text("raise RuntimeError('the user module was imported')\n")
    script = tmp_path / "script.py"
    script.write_text(
        "import torch\n"
        "from sciml import ODEProblem, odeint, solve\n"
        "from sciml.solvers.ode import odeint as odeint2\n"
        "import sciml.problems.pde as pde\n"
        "y = odeint(lambda t, y: -y, torch.ones(2, dtype=torch.float64), torch.tensor([0.0, 1.0]))\n"
        "print(float(y[-1, 0]))\n"
    )
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert abs(float(out.stdout) - 0.36787944) < 1e-5


def test_top_level_names_resolve_and_version_is_set():
    assert sciml.__version__ and sciml.__version__ != "0.0.0+unknown"
    for name in sciml.__all__:
        assert getattr(sciml, name) is not None


def test_the_solver_core_imports_no_plotting_storage_or_learning_library():
    code = (
        "import sys\n"
        "import sciml.solvers.ode, sciml.solvers.sde\n"
        "from sciml import odeint, sdeint, solve\n"
        "print(sorted(m for m in ('h5py', 'matplotlib', 'sklearn') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
