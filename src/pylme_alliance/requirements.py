"""What the package needs from R: the single list that setup, doctor and tests read."""
from __future__ import annotations

#: R packages the code calls at run time, with the minimum version it was tested against
#: (pbkrtest: Kenward-Roger df through lmerTest; lavaan: reciprocal(), r/reciprocal.R).
R_PACKAGES: dict[str, str] = {
    "lme4": "1.1-31",
    "nlme": "3.1-160",
    "lmerTest": "3.1-3",
    "glmmTMB": "1.1.5",
    "emmeans": "1.8.4",
    "pbkrtest": "0.5.2",
    "lavaan": "0.6-14",
}

#: R packages set-up installs but the package never calls: (minimum version, what for).
#: doctor lists them as optional; a missing one is not a problem.
R_PACKAGES_OPTIONAL: dict[str, tuple[str, str]] = {
    "jsonlite": ("1.8.0", "writes the golden files (tests/r/make_golden.R, `make golden`)"),
    "broom.mixed": ("0.2.9", "not called by pylme_alliance (its tables are built in r/tidy.R); "
                             "for your own R work"),
}

_ALL_R_PACKAGES = [*R_PACKAGES, *R_PACKAGES_OPTIONAL]

#: Debian package that provides each R package (for the fix-it command doctor prints).
DEBIAN_PACKAGES: dict[str, str] = {name: "r-cran-" + name.lower() for name in _ALL_R_PACKAGES}

#: conda-forge package that provides each R package.
CONDA_PACKAGES: dict[str, str] = {name: "r-" + name.lower() for name in _ALL_R_PACKAGES}

#: rpy2 releases from 3.6.7 on use R API symbols that appeared in R 4.5.  From 3.6.0 on,
#: rpy2 is a meta package over rpy2-rinterface and rpy2-robjects whose own versions float
#: freely ("rpy2==3.6.5" happily pulls rpy2-rinterface 3.6.7, which fails on R 4.2 with
#: "undefined symbol: R_getVar"), so for an older R we stay on the self-contained 3.5 series.
RPY2_FOR_OLD_R = "rpy2>=3.5.11,<3.6"
#: split packages that must not linger beside a 3.5 rpy2 (they overwrite its modules).
RPY2_SPLIT_PACKAGES = ("rpy2-rinterface", "rpy2-robjects")
RPY2_FOR_NEW_R = "rpy2>=3.6.7"
R_VERSION_FOR_NEW_RPY2 = (4, 5)


def rpy2_requirement(r_version: tuple[int, int]) -> str:
    """The rpy2 requirement string that fits an R version ``(major, minor)``."""
    return RPY2_FOR_NEW_R if tuple(r_version) >= R_VERSION_FOR_NEW_RPY2 else RPY2_FOR_OLD_R
