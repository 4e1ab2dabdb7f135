"""The bundled example trial (``data/example_trial.csv``) and its regeneration.

The example is ``simulate(seed=EXAMPLE_SEED, moderation=EXAMPLE_MODERATION)``
with every other argument at its default (no symptom->alliance feedback,
independent alliance deviations: the static process). Regenerate it with::

    python -m pylme_alliance.simulation.example            # writes the package CSV
    python -m pylme_alliance.simulation.example out.csv    # or anywhere else
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import PylmeError
from ._simchecks import ARMS, COLUMNS
from .simulate import simulate

__all__ = ["EXAMPLE_MODERATION", "EXAMPLE_SEED", "load_example", "write_example"]

#: Seed of the bundled example trial.
EXAMPLE_SEED: int = 2015

#: Moderation built into the bundled example trial, in the directions METHODS.md
#: reports: a more negative (stronger) within effect for more severe patients,
#: longer treatments and more integrative therapists; alliance feedback
#: strengthens it a little, the OQ report weakens it a little.
EXAMPLE_MODERATION: dict[str, Any] = {
    "severity": -0.06,          # per OQ point of intake severity (SD ~23)
    "n_sessions": -0.20,        # per attended session (SD ~5)
    "integrative": -0.8,        # per point of integrative orientation (SD ~1.3)
    "arm": {"symptoms": 0.0, "alliance": -0.6, "both": -0.6, "oq_report": 0.3},
}


def _example_path() -> Any:
    return resources.files("pylme_alliance") / "data" / "example_trial.csv"


def _example_data() -> pd.DataFrame:
    return simulate(seed=EXAMPLE_SEED, moderation=EXAMPLE_MODERATION).data


def write_example(path: str | Path | None = None) -> Path:
    """Regenerate the example trial CSV.

    Parameters
    ----------
    path : str or Path, optional
        Where to write; by default the package's ``data/example_trial.csv``
        (needs a writable source checkout).

    Returns
    -------
    Path
        The file written.
    """
    target = Path(str(_example_path())) if path is None else Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = _example_data()
    # fixed float format and "\n" line ends keep the file byte-stable across platforms
    data.to_csv(target, index=False, float_format="%.10g", lineterminator="\n")
    return target


def _coerce_example(df: pd.DataFrame) -> pd.DataFrame:
    df["arm"] = pd.Categorical(df["arm"], categories=list(ARMS))
    return df[COLUMNS]


def _read_trial_csv(source: Any) -> pd.DataFrame:
    dtypes = {
        "patient": str, "therapist": str, "session": "int64", "day": "int64",
        "alliance": "float64", "outcome": "float64", "severity": "float64",
        "n_sessions": "int64", "integrative": "int64",
    }
    return _coerce_example(pd.read_csv(source, dtype=dtypes))


def load_example() -> pd.DataFrame:
    """The bundled example trial (547 patients, 40 therapists, 5 arms).

    It is ``simulate(seed=2015, moderation=EXAMPLE_MODERATION).data``; the truth
    behind it is ``simulate(seed=2015, moderation=EXAMPLE_MODERATION).truth``.

    Returns
    -------
    pandas.DataFrame
        Columns ``patient``, ``therapist`` (str), ``arm`` (categorical with
        "none" first), ``session``, ``day`` (int64), ``alliance``,
        ``outcome``, ``severity`` (float64), ``n_sessions``, ``integrative``
        (int64). One row per attended session.
    """
    path = _example_path()
    if not path.is_file():
        raise PylmeError(
            "the example trial data/example_trial.csv is missing from the installed package; "
            "regenerate it with `python -m pylme_alliance.simulation.example`")
    with path.open("r", encoding="utf-8") as fh:
        return _read_trial_csv(fh)


def _main(argv: Sequence[str]) -> int:
    out = write_example(argv[0] if argv else None)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
