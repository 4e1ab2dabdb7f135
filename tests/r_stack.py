"""Facts about the installed R packages that decide what a test can expect of them."""
from __future__ import annotations

from functools import cache

from pylme_alliance.doctor import glmmtmb_tmb_versions


@cache
def glmmtmb_tmb_mismatch() -> str | None:
    """Why glmmTMB's fits are unreliable here, or None: glmmTMB compiled against another TMB
    than the one installed (Debian 13 ships glmmTMB 1.1.10 built with TMB 1.9.16 beside TMB
    1.9.17; there its ML fit of the heterogeneity model ends with a non-positive-definite
    Hessian and no log-likelihood under both nlminb and BFGS, where lme4 fits it cleanly)."""
    versions = glmmtmb_tmb_versions()
    if versions is None or versions[0] == versions[1]:
        return None
    return (f"glmmTMB was built with TMB {versions[0]} but TMB {versions[1]} is installed (a distribution's "
            "packages out of step): its fits of this model are not reliable here")
