"""Residual correlation structures for nlme (``lme(..., correlation=AR1("~ session | patient"))``).

Each is a small immutable description; the R side builds nlme's corAR1, corCAR1,
corARMA or corCompSymm from it. ``form`` is nlme's formula text: ``"~ t | g"`` uses the
covariate ``t`` within groups ``g`` (an integer for AR1/ARMA, any number for CAR1);
``"~ 1 | g"`` uses row order within ``g``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import PylmeError


@dataclass(frozen=True)
class Correlation:
    """Base class: a residual correlation structure with its ``form``."""

    form: str = "~ 1"

    type = "base"

    def __post_init__(self) -> None:
        if isinstance(self.form, str) and "\x00" in self.form:
            raise PylmeError(f"{type(self).__name__}: form contains a NUL character (\\x00): {self.form!r}")
        if not isinstance(self.form, str) or "~" not in self.form:
            raise PylmeError(f"{type(self).__name__}: form must be formula text like '~ session | patient', "
                             f"got {self.form!r}")

    def spec(self) -> dict[str, Any]:
        """What the R side needs to build the structure."""
        return {"type": self.type, "form": self.form}

    @property
    def parameters(self) -> tuple[str, ...]:
        """Term names of its parameters in ``tidy("ran_pars")`` (group "Residual")."""
        return ("phi",)


@dataclass(frozen=True)
class AR1(Correlation):
    """First-order autoregressive residuals on an integer time covariate (nlme corAR1)."""

    type = "AR1"


@dataclass(frozen=True)
class CAR1(Correlation):
    """Continuous-time AR(1) on a numeric time covariate, e.g. days (nlme corCAR1)."""

    type = "CAR1"


@dataclass(frozen=True)
class CompSymm(Correlation):
    """Compound symmetry within groups (nlme corCompSymm); parameter ``rho``."""

    type = "CompSymm"

    @property
    def parameters(self) -> tuple[str, ...]:
        return ("rho",)


@dataclass(frozen=True, init=False)
class ARMA(Correlation):
    """ARMA(p, q) residuals (nlme corARMA); parameters ``phi1..phip``, ``theta1..thetaq``.

    Called as ``ARMA(p, q, form)``, the order of nlme's corARMA arguments.
    """

    p: int = 1
    q: int = 0

    type = "ARMA"

    def __init__(self, p: int = 1, q: int = 0, form: str = "~ 1") -> None:
        object.__setattr__(self, "form", form)
        object.__setattr__(self, "p", p)
        object.__setattr__(self, "q", q)
        self.__post_init__()

    def __post_init__(self) -> None:
        super().__post_init__()
        if int(self.p) != self.p or int(self.q) != self.q or self.p < 0 or self.q < 0 or self.p + self.q == 0:
            raise PylmeError(f"ARMA needs non-negative integer p and q, not both 0 (got p={self.p}, q={self.q})")

    def spec(self) -> dict[str, Any]:
        return {"type": "ARMA", "form": self.form, "p": int(self.p), "q": int(self.q)}

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(f"phi{i + 1}" for i in range(self.p)) + tuple(f"theta{i + 1}" for i in range(self.q))
