"""examples/pig_variants.py: both models side by side in one run, the plot, and refused variant keys."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "pig_variants.py"
TINY = '"train": {"adam_iterations": 20, "lbfgs_iterations": 5, "eval_every": 5}'


def run(tmp_path, *args):
    env = {**os.environ, "SCIML_CACHE_DIR": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--problem", "legendre", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_pinn_and_pig_variants_in_one_run_with_a_plot(tmp_path):
    out = run(
        tmp_path,
        "--plot", "curves.png",
        "--variant", f'pinn:{{"model": "pinn", {TINY}}}',
        "--variant", f'pig:{{{TINY}}}',
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    table = out.stdout.split("variant  validation")[-1]
    assert "pinn" in table and "pig" in table
    png = tmp_path / "curves.png"
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_misspelt_variant_key_is_refused(tmp_path):
    out = run(tmp_path, "--variant", 'typo:{"trian": {"lbfgs_iterations": 5}}')
    assert out.returncode != 0
    assert "'trian'" in out.stderr and "'train'" in out.stderr


def test_an_unknown_model_is_refused(tmp_path):
    out = run(tmp_path, "--variant", 'x:{"model": "mlp"}')
    assert out.returncode != 0 and "'mlp'" in out.stderr


def test_settings_that_are_not_a_json_object_are_refused(tmp_path):
    for bad in ("x:{train: 1}", "x:[1, 2]"):
        out = run(tmp_path, "--variant", bad)
        assert out.returncode != 0 and "--variant 'x'" in out.stderr and "Traceback" not in out.stderr
