"""ModelSpec: an AllianceModel written for one engine, and the naming rules it uses.

Kept apart from :mod:`.model` so that :mod:`.fit` can name the spec without importing
the model (which itself returns fits): the import graph stays a tree
(spec <- fit <- model).
"""
from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

THERAPIST = ("nested", "crossed", "none")
RESIDUAL = ("iid", "ar1", "car1")
ENGINES = ("lme4", "nlme", "glmmtmb", "statsmodels")
SESSION_FACTOR = "session_f"
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Names of the model frame's own columns: a moderator may not take one of them.
FRAME_NAMES = frozenset({"patient", "therapist", "session", "outcome", "time_days", SESSION_FACTOR})


@dataclass(frozen=True)
class ModelSpec:
    """An AllianceModel written for one engine, on one panel."""

    engine: str
    response: str
    fixed_terms: tuple[str, ...]
    formula: str                      # lme4 / glmmTMB formula, or nlme's fixed part
    random: Any = None                # nlme random (text or dict)
    correlation: Any = None           # nlme correlation structure
    dispformula: str | None = None    # glmmTMB
    groups: str | None = None         # statsmodels
    re_formula: str | None = None
    vc_formula: Mapping[str, str] | None = None
    moderator_names: Mapping[str, str] = field(default_factory=dict)  # model column -> original name

    def describe(self) -> str:
        """The formula (parts) as the engine is given them."""
        if self.engine == "nlme":
            text = f"lme(fixed = {self.formula}, random = {show_random(self.random)}"
            if self.correlation is not None:
                text += f", correlation = {type(self.correlation).__name__}({self.correlation.form!r})"
            return text + ")"
        if self.engine == "glmmtmb":
            return self.formula + (f", dispformula = {self.dispformula}" if self.dispformula else "")
        if self.engine == "statsmodels":
            parts = [self.formula, f"groups = {self.groups}"]
            if self.re_formula:
                parts.append(f"re_formula = {self.re_formula!r}")
            if self.vc_formula:
                parts.append(f"vc_formula = {dict(self.vc_formula)!r}")
            return ", ".join(parts)
        return self.formula


def show_random(random: Any) -> str:
    """nlme's ``random`` argument as R would print it."""
    if isinstance(random, str):
        return random
    return "list(" + ", ".join(f"{k} = {v}" for k, v in random.items()) + ")"


def model_name(original: Any, position: int, suffix: str = "") -> str:
    """The model-frame name of a moderator: its own name when that is a plain identifier
    not used by the frame, else ``moderator<position+1>``."""
    text = str(original)
    if (_IDENTIFIER.match(text) and not keyword.iskeyword(text) and text not in FRAME_NAMES
            and not text.startswith(("outcome_", "alliance_"))):
        return text + suffix
    return f"moderator{position + 1}{suffix}"
