"""Facts about the installed R packages that decide what a test can expect of them."""
from __future__ import annotations

import subprocess
from functools import cache


@cache
def glmmtmb_tmb_mismatch() -> str | None:
    """Why glmmTMB's fits are unreliable here, or None: glmmTMB compiled against another TMB
    than the one installed (Debian 13 ships glmmTMB 1.1.10 built with TMB 1.9.16 beside TMB
    1.9.17; there its ML fit of the heterogeneity model ends with a non-positive-definite
    Hessian and no log-likelihood under both nlminb and BFGS, where lme4 fits it cleanly)."""
    code = ('b <- as.character(glmmTMB:::.TMB.build.version); i <- as.character(packageVersion("TMB")); '
            'cat(b, i)')
    try:
        out = subprocess.run(["Rscript", "--vanilla", "-e", code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split()
    if out.returncode != 0 or len(parts) != 2 or parts[0] == parts[1]:
        return None
    return (f"glmmTMB was built with TMB {parts[0]} but TMB {parts[1]} is installed (a distribution's "
            "packages out of step): its fits of this model are not reliable here")
