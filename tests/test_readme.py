"""Every ```python block of README.md runs (issue 11, issue 21 item 7).

The blocks run in README order, as one script, in a fresh Python process started in a
scratch directory, on the bundled example, with a timeout. A block preceded by an
``<!-- illustrative: why -->`` comment is only shown in the README (it needs something
this machine has not, or hours); it is skipped, and the README says so visibly.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: wall-clock limit for the whole README; the blocks use small sizes (CPU is shared)
TIMEOUT = 1200
_ILLUSTRATIVE = re.compile(r"<!--\s*illustrative:\s*(?P<why>[^>]*?)\s*-->")


@dataclass(frozen=True)
class Block:
    line: int              # README line of the opening fence
    code: str
    illustrative: str      # the reason given in the marker, "" for a block that runs


def readme_blocks(text: str) -> list[Block]:
    """The ```python blocks of ``text``, each with its line and its illustrative reason
    (a marker on one of the two lines above the fence)."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if not lines[i].startswith("```python"):
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        marker = _ILLUSTRATIVE.search("\n".join(lines[max(0, i - 2):i]))
        blocks.append(Block(line=i + 1, code="".join(line + "\n" for line in lines[i + 1:end]),
                            illustrative=marker.group("why") if marker else ""))
        i = end + 1
    return blocks


def readme_script(blocks: list[Block]) -> str:
    """The blocks that run, as one script that names each block before running it."""
    parts = []
    for block in blocks:
        if block.illustrative:
            continue
        parts.append(f"print('README block at line {block.line}', flush=True)\n{block.code}")
    return "\n".join(parts)


def test_blocks_are_found_and_markers_read():
    text = ("intro\n```python\na = 1\n```\n\n<!-- illustrative: needs a Dask cluster -->\n"
            "```python\nclient = Client('tcp://x:8786')\n```\n```python title\nb = a + 1\n```\n")
    blocks = readme_blocks(text)
    assert [b.code for b in blocks] == ["a = 1\n", "client = Client('tcp://x:8786')\n", "b = a + 1\n"]
    assert [b.illustrative for b in blocks] == ["", "needs a Dask cluster", ""]
    script = readme_script(blocks)
    assert "Client(" not in script and "b = a + 1" in script


def test_readme_marks_few_blocks_illustrative():
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    shown = [b for b in blocks if b.illustrative]
    assert len(blocks) >= 10
    # a skipped block is the exception, and says why
    assert len(shown) <= 3 and all(len(b.illustrative) > 10 for b in shown)


def test_every_readme_block_runs(tmp_path):
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    # run as -c, not as a file: spawned workers (process pool, Dask) would re-run a __main__ file
    script = readme_script(blocks)
    env = {**os.environ, "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    ran = re.findall(r"^README block at line (\d+)$", done.stdout, flags=re.M)
    assert done.returncode == 0, (f"README block at line {ran[-1] if ran else '?'} failed:\n"
                                  + done.stderr[-4000:])
    assert len(ran) == sum(1 for b in blocks if not b.illustrative)
    # what the tour says it writes is there
    assert (tmp_path / "out" / "report.md").exists() and (tmp_path / "out" / "results.json").exists()
    assert (tmp_path / "power" / "power.csv").exists() and (tmp_path / "trial.dta").exists()
