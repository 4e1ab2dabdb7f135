"""Writing prepare()'s columns into the panel's frame without needless copies."""
from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd


def _set_checked(out: pd.DataFrame, name: Hashable, values: np.ndarray) -> None:
    """``out[name] = values``, skipped when the column already holds exactly these values
    in this dtype (int64 sessions, float64 scores: the usual input; both 8 bytes wide)."""
    current = out[name]
    if current.dtype == values.dtype:
        held = current.to_numpy()
        if held.dtype == values.dtype and np.array_equal(held.view(np.int64), values.view(np.int64)):
            return
    out[name] = values


def _with_columns(out: pd.DataFrame, new: dict[str, np.ndarray]) -> pd.DataFrame:
    """``out`` with the columns ``new`` appended in order (as ``out[k] = v`` one by one)."""
    if not new:
        return out
    return pd.concat([out, pd.DataFrame(new, index=out.index)], axis=1)
