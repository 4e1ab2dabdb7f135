"""Load the golden cases written by tests/r/make_golden.R and fit them through the package."""
from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.json"))


@lru_cache(maxsize=None)
def case(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{name}.json").read_text())


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
