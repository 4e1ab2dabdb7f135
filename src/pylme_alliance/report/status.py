"""Which fit statuses are real problems and which are expected by design (issue 21, item 2).

:func:`~pylme_alliance.models.diagnostics.fit_status` says everything that is unusual
about a fit. Some of it is expected: with the decomposed outcome control the patient's
mean outcome is a fixed effect, so it carries the patients' (and therapists') levels and
the random intercepts are estimated at 0 -- the fit is "singular" by construction, and
the within effect is unaffected. That is said once in the methods; a number is flagged
only for a real problem (no convergence, a random slope or correlation at its boundary).

The status TEXT is the interface (the tables keep it whole); the classification lives
here so that the models can change how they word or avoid the expected case.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: the words fit_status adds to a boundary that the model's fixed part explains
EXPECTED_MARK = "expected with the decomposed outcome control"

#: the words fit_status starts a problem with when the recovery study measured the within
#: effect off on data like the fit's (models/reliability.py): always a REAL problem
UNRELIABLE_MARK = "unreliable here"

#: said once in the methods when any fit had the expected boundary
EXPECTED_METHODS = (
    "With the decomposed outcome control the patient's mean outcome is a fixed effect; it carries the "
    "patients' (and therapists') outcome levels, so the random intercepts are estimated at 0 (lme4 calls such a "
    "fit \"singular\"). This is expected by design and does not affect the alliance effects; those fits are not "
    "flagged. Every fit's full status is in the appendix.")


def _text(status: Any) -> str:
    if status is None or (isinstance(status, float) and status != status):
        return ""
    text = str(status).strip()
    return "" if text in ("ok", "nan") else text


def problems(status: Any) -> list[str]:
    """The parts of a status ("did not converge", "singular (...)"), split at the
    top-level ``;`` (never inside parentheses)."""
    text, parts, depth, current = _text(status), [], 0, []
    for char in text:
        depth += char == "("
        depth -= char == ")" and depth > 0
        if char == ";" and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def is_expected(problem: str) -> bool:
    """A problem the model's design explains (its text carries :data:`EXPECTED_MARK`);
    never one that says the within effect is unreliable on data like these."""
    return EXPECTED_MARK in problem and not problem.startswith(UNRELIABLE_MARK)


def real(status: Any) -> str:
    """The status without what is expected by design ("" when nothing real is left)."""
    return "; ".join(p for p in problems(status) if not is_expected(p))


def has_expected(status: Any) -> bool:
    return any(is_expected(p) for p in problems(status))


def short(status: Any) -> str:
    """"singular (SD of ... ~ 0)" -> "singular", for the real problems only."""
    out = []
    for problem in problems(real(status)):
        out.append(problem.split("(", 1)[0].strip())
    return "; ".join(dict.fromkeys(o for o in out if o))


class Markers:
    """Short markers ("⚠1", "⚠2") for the distinct real statuses of a document, numbered
    in the order they are first met; each marker's text is given once per table."""

    SIGN = "\u26a0"

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def mark(self, status: Any) -> str:
        """The marker of a status ("" when nothing real is wrong)."""
        text = real(status)
        if not text:
            return ""
        number = self._numbers.setdefault(text, len(self._numbers) + 1)
        return f"{self.SIGN}{number}"

    def footnotes(self, statuses: Iterable[Any]) -> list[str]:
        """One footnote per distinct marker among ``statuses``, in marker order."""
        seen: dict[str, str] = {}
        for status in statuses:
            text = real(status)
            if text:
                seen.setdefault(self.mark(text), text)
        return [f"{m}: from a fit that is {explain(t)}." for m, t in sorted(seen.items(), key=lambda i: _num(i[0]))]


def _num(marker: str) -> int:
    return int(marker.lstrip(Markers.SIGN) or 0)


def explain(status: str) -> str:
    """A real status in words a reader can act on."""
    words = []
    for problem in problems(status):
        if problem.startswith("did not converge"):
            words.append("did not converge (the optimizer stopped before the maximum; treat the estimate as "
                         "unreliable)")
        elif problem.startswith(("singular", "degenerate")):
            detail = problem[problem.find("(") + 1:problem.rfind(")")] if "(" in problem else ""
            words.append("at the boundary of its random-effect structure"
                         + (f" ({detail})" if detail else "")
                         + ": the fixed effects stand, its variance components are not interpretable")
        elif problem.startswith(UNRELIABLE_MARK):
            words.append(problem + " (the package's recovery study: more than 10% bias or 95% intervals covering "
                         "the truth less than 90% of the time, so read the within effect as unreliable)")
        else:
            words.append(problem)
    return "; ".join(words)
