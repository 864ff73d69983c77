"""Every ```python block of README.md and of the manual (docs/) runs as written.

The blocks of one file run in order in one fresh interpreter (a later block may use names an earlier one
defined), in a temporary directory, with a private reference cache.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


@pytest.mark.parametrize(
    "path", [p for p in FILES if python_blocks(p)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_code_blocks_run(path, tmp_path):
    blocks = python_blocks(path)
    script = "\n".join(f"# --- block {i + 1}\n{block}" for i, block in enumerate(blocks))
    (tmp_path / "blocks.py").write_text(script)
    env = {
        **os.environ,
        "SCIML_CACHE_DIR": str(tmp_path / "cache"),
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
    }
    out = subprocess.run(
        [sys.executable, "blocks.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, f"{path.name}: a python block failed\n{out.stderr[-3000:]}"


def test_every_block_is_found():
    # a block fence written another way (```py, indented) would silently escape the test
    for path in FILES:
        text = path.read_text()
        assert text.count("```python") == len(python_blocks(path)), path
        assert "```py\n" not in text, path
