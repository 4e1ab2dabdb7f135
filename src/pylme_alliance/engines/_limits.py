"""How large a formula may grow, one rule for the R engines and for statsmodels.

An interaction of k terms (``a*b*c*...`` or ``(a+b+...)^k``) expands to up to 2^k terms
before anything is fitted; the expansion itself can take hours. Each formula interface
computes an upper bound on its terms without expanding (R from its parse tree, patsy's
from Python's) and hands it here before any work.
"""
from __future__ import annotations

from ..errors import PylmeError

#: The most terms a formula may expand to (R's ``terms()`` of ``a*b*c*...`` makes 2^k
#: terms and took minutes for k = 22; patsy likewise). The bound comes from the parse
#: tree, before anything is expanded: ``a*b`` counts 3, ``(a+b+c)^2`` 6, ``x:z`` 1.
MAX_FORMULA_TERMS = 2000


def check_formula_size(what: str, text: str, bound: float, *, power: str = "^") -> None:
    """Refuse ``text`` when its term ``bound`` exceeds :data:`MAX_FORMULA_TERMS`, naming
    the limit (``power`` is the interface's power operator, for the example)."""
    if bound <= MAX_FORMULA_TERMS:
        return
    shown = text if len(text) <= 80 else text[:77] + "..."
    raise PylmeError(
        f"{what} {shown!r} would expand to up to {bound:,.0f} terms, more than the limit of "
        f"{MAX_FORMULA_TERMS:,} terms a formula may have (interactions such as a*b*c*... or "
        f"(a+b+...){power}k grow as 2^k); write the interactions you mean, e.g. a + b + a:b")
