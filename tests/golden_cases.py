"""Load the golden cases written by tests/r/make_golden.R and fit them through the package.

There is one reference set per stack of R package versions (``tests/golden/<stack>/``,
named by make_golden.R after R, lme4, nlme and glmmTMB; the exact versions are inside
every JSON). The tests compare against the set made with the versions installed here;
with versions no set was made with, they fall back to the newest set and a tolerance
derived from each case's measured optimizer spread (see tests/test_golden.py).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

GOLDEN = Path(__file__).parent / "golden"

# The same label make_golden.R's stack_label() gives the versions it runs with.
_STACK_SCRIPT = (
    'v <- function(p) as.character(packageVersion(p)); '
    'cat(sprintf("R%s.%s_lme4-%s_nlme-%s_glmmTMB-%s", R.version$major, R.version$minor, '
    'v("lme4"), v("nlme"), v("glmmTMB")))'
)


def _version_key(label: str) -> tuple:
    return tuple(int(n) for n in re.findall(r"\d+", label))


#: every committed reference set, oldest stack first
SETS: list[Path] = sorted((p for p in GOLDEN.iterdir() if p.is_dir() and any(p.glob("*.json"))),
                          key=lambda p: _version_key(p.name))


@cache
def installed_stack() -> str | None:
    """The stack label of the R packages installed here (None without R)."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None
    out = subprocess.run([rscript, "--vanilla", "-e", _STACK_SCRIPT], capture_output=True, text=True,
                         timeout=120)
    return out.stdout.strip() or None


def reference_dir() -> Path:
    """The reference set for the installed versions, else the newest one."""
    matched = GOLDEN / (installed_stack() or "-")
    return matched if matched in SETS else SETS[-1]


def matched() -> bool:
    """Whether a reference set was made with exactly the installed R package versions."""
    return reference_dir().name == installed_stack()


CASES = sorted(p.stem for p in reference_dir().glob("*.json"))


@cache
def case(name: str, stack: str | None = None) -> dict[str, Any]:
    """A case of the reference set ``stack`` (default: the one for the installed versions)."""
    folder = GOLDEN / stack if stack else reference_dir()
    return json.loads((folder / f"{name}.json").read_text())


def data_for(name: str) -> pd.DataFrame:
    spec = case(name)
    frame = pd.read_csv(GOLDEN / "data" / spec["data"])
    for column, levels in spec["factors"].items():
        frame[column] = pd.Categorical(frame[column].astype(str), categories=[str(v) for v in levels])
    return frame


def fit_case(name: str):
    import pylme_alliance as pa

    spec = case(name)
    args = dict(spec["args"])
    data = data_for(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pa.RWarning)
        if spec["engine"] == "lmer":
            return pa.lmer(args.pop("formula"), data, **args)
        if spec["engine"] == "glmmtmb":
            return pa.glmmtmb(args.pop("formula"), data, **args)
        corr = args.pop("correlation")
        if corr is not None:
            kind = corr["type"]
            if kind == "ARMA":
                corr = pa.ARMA(corr["p"], corr["q"], corr["form"])
            else:
                corr = getattr(pa, kind)(corr["form"])
        return pa.lme(args.pop("fixed"), data, random=args.pop("random"), correlation=corr, **args)
