"""The README's tour runs as written (issue 11): every ```python block, in order, in one
namespace, in a scratch directory."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _tour_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    tour = text[text.index("## A short tour"):]
    tour = tour[:tour.index("### Already using statsmodels?")]
    return re.findall(r"```python\n(.*?)```", tour, flags=re.S)


def test_readme_tour_runs(tmp_path, monkeypatch):
    blocks = _tour_blocks()
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert (tmp_path / "out" / "report.md").exists()
    assert namespace["fit"].nobs > 0
