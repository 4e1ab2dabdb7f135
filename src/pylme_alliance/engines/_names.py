"""The names a model's columns have inside R, and the way back.

Every column a model uses crosses to R under a generated name (``v1_``, ``v2_``, ...),
never under the user's text: R code that pastes names into ``parse(text=)`` (nlme's
grouping formulas), deparsing that adds backticks, and R's reserved words (``TRUE``,
``NULL``, ``function``) then never see a user's name. The formulas are rewritten
symbol by symbol in R (``r/formula.R``), and every name R hands back (terms, groups,
table columns, warning text) goes through :meth:`NameMap.to_user`, the one place
where generated names become the user's again.

The trailing underscore makes every generated name end where it ends: R builds term
names by gluing a factor's level to its name (``v3_B`` is level ``B`` of ``v3_``), and
``v1_2`` (level ``2`` of ``v1_``) cannot be read as ``v12_``. A generated name is
recognised only where it does not follow a letter or digit (``sd__v2_`` holds
``v2_``; ``xv2_`` does not), so a factor level glued behind a name is left as it is
unless the level itself starts with ``v<digits>_``. Factor levels are data: they are
never renamed. A map made with :meth:`NameMap.of` knows the levels of the model's
categorical columns that look like generated names (``v1_hi``): a generated name with
such a level glued to it (``v2_v1_hi``) is read as one token, column and level, so the
level comes back exactly as it was (``armv1_hi``), never as ``armarmhi``.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

_GENERATED = re.compile(r"(?<![A-Za-z0-9])v([0-9]+)_")


@dataclass(frozen=True)
class NameMap:
    """User column names <-> the syntactic names they carry inside R.

    Parameters
    ----------
    columns : iterable of str
        The model's columns, in the order they are numbered.
    """

    columns: tuple[str, ...]
    to_r: dict[str, str] = field(init=False, repr=False)

    def __init__(self, columns: Iterable[str], levels: Mapping[str, Iterable[Any]] | None = None) -> None:
        object.__setattr__(self, "columns", tuple(columns))
        object.__setattr__(self, "to_r", {c: f"v{i + 1}_" for i, c in enumerate(self.columns)})
        # "<generated name><level>" -> "<user name><level>" for levels that hold a
        # generated-looking name: matched as a whole before the generic pattern
        glued: dict[str, str] = {}
        for column, values in (levels or {}).items():
            if column not in self.to_r:
                continue
            for level in map(str, values):
                if _GENERATED.search(level):
                    glued[self.to_r[column] + level] = column + level
        pattern = _GENERATED
        if glued:
            keys = sorted(glued, key=len, reverse=True)  # longest first: v1_v2_x before v1_v2_
            pattern = re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, keys)) + r"|v([0-9]+)_)")
        object.__setattr__(self, "_glued", glued)
        object.__setattr__(self, "_pattern", pattern)

    @classmethod
    def of(cls, frame: pd.DataFrame) -> NameMap:
        """The map of a model frame's columns, with the levels of its categorical columns
        (see the module docstring)."""
        levels = {}
        for column in frame.columns:
            series = frame[column]
            if isinstance(series.dtype, pd.CategoricalDtype):
                levels[str(column)] = list(series.cat.categories)
            elif not pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_datetime64_any_dtype(
                    series.dtype):
                levels[str(column)] = list(series.dropna().unique())
        return cls([str(c) for c in frame.columns], levels)

    # ----------------------------------------------------------------- to R
    def r_names(self) -> dict[str, list[str]]:
        """``{"from": user names, "to": generated names}`` for ``pylme_formula`` in R."""
        return {"from": list(self.to_r), "to": list(self.to_r.values())}

    def frame_to_r(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A new frame holding the model columns ``frame`` has, under their R names."""
        keep = [c for c in frame.columns if c in self.to_r]
        out = frame.loc[:, keep]
        out.columns = [self.to_r[c] for c in keep]
        return out

    # ------------------------------------------------------------- back home
    def to_user(self, text: Any) -> Any:
        """``text`` with every generated name replaced by the user's name (non-strings
        are returned as they are)."""
        if not isinstance(text, str):
            return text

        glued: dict[str, str] = self._glued  # type: ignore[attr-defined]

        def back(match: re.Match[str]) -> str:
            if match.group(0) in glued:
                return glued[match.group(0)]
            k = int(match.group(1)) - 1
            return self.columns[k] if 0 <= k < len(self.columns) else match.group(0)

        return self._pattern.sub(back, text)  # type: ignore[attr-defined]

    def columns_in(self, r_text: str) -> list[str]:
        """The user's columns whose generated names occur in ``r_text``."""
        glued: dict[str, str] = self._glued  # type: ignore[attr-defined]
        found = []
        for match in self._pattern.finditer(r_text):  # type: ignore[attr-defined]
            token = match.group(0)
            generated = token if token not in glued else _GENERATED.match(token).group(0)  # type: ignore[union-attr]
            found.append(int(generated[1:-1]) - 1)
        return list(dict.fromkeys(self.columns[k] for k in found if 0 <= k < len(self.columns)))

    def term_to_r(self, term: str, r_terms: Iterable[str]) -> str:
        """The R name, among ``r_terms``, of a term given in the user's names."""
        if term in self.to_r:
            return self.to_r[term]
        for r_term in r_terms:
            if self.to_user(r_term) == term:
                return r_term
        return term

    def series(self, values: pd.Series) -> pd.Series:
        """A copy with the index (term names) mapped back."""
        out = values.copy()
        out.index = [self.to_user(str(i)) for i in out.index]
        return out

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A copy with row and column labels mapped back (vcov)."""
        out = frame.copy()
        out.columns = [self.to_user(str(c)) for c in out.columns]
        out.index = [self.to_user(str(i)) for i in out.index]
        return out

    def table(self, frame: pd.DataFrame, columns: Iterable[str] = ("group", "term")) -> pd.DataFrame:
        """A copy with the name-holding columns of a long table mapped back (never
        ``level``: levels are data)."""
        out = frame.copy()
        for col in columns:
            if col in out:
                out[col] = [self.to_user(v) for v in out[col].to_numpy(dtype=object)]
        return out

    def wide(self, frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """{group: frame with term columns} with keys and column labels mapped back."""
        out = {}
        for group, frame in frames.items():
            copy = frame.copy()
            copy.columns = [self.to_user(str(c)) for c in copy.columns]
            out[self.to_user(str(group))] = copy
        return out

    def texts(self, messages: Iterable[str]) -> tuple[str, ...]:
        return tuple(self.to_user(str(m)) for m in messages)

    def keys(self, mapping: Mapping[str, Any]) -> dict[str, Any]:
        return {self.to_user(str(k)): v for k, v in mapping.items()}
