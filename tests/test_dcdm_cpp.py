"""The C++ consumer of the exported DCDM solver (examples/cpp): built against the torch wheel's libtorch,
run on the plume and closed-box pressure systems it assembles, answers checked against Python (rtol 1e-6).

Building takes about a minute (one translation unit including libtorch's headers), so the test is marked
slow; CI runs ``examples/cpp/build_and_run.sh`` directly.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "cpp" / "build_and_run.sh"


@pytest.mark.slow
def test_cpp_program_builds_runs_and_agrees_with_python(tmp_path):
    missing = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"no {' and '.join(missing)} on this machine: cannot build the C++ example")
    run = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "build")],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in run.stdout.splitlines() if line.startswith(("plume", "box"))]
    assert len(lines) == 2 and all("(ok)" in line for line in lines), run.stdout
