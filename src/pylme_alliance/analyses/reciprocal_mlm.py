"""method="mlm" of :func:`pylme_alliance.reciprocal`: the package's decomposed
multilevel model for alliance -> outcome and its mirror (roles swapped) for
outcome -> alliance, labelled with the bias issue 19 measured."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import PylmeError
from ..models.model import AllianceModel
from ..panel.prepare import AlliancePanel, prepare

#: What issue 19 measured for this pair (400 patients, 6-20 sessions, 50 trials).
MLM_BIAS = ("measured bias (issue 19): alliance->outcome -21% (coverage .76) when patients have their own "
            "trajectories in both series (-12% detrended, ~-1% without patient trends); "
            "outcome->alliance -12% to -14% (lagged-outcome bias) and a spurious effect under a true 0")


def source_frame(panel: AlliancePanel) -> pd.DataFrame:
    """The panel's sessions with their original columns, kept and dropped-for-a-missing-
    rating rows together (a new frame; the role columns only)."""
    roles = panel.roles
    columns = [roles[r] for r in ("patient", "session", "alliance", "outcome", "therapist", "time")
               if roles.get(r) is not None]
    dropped = panel.dropped
    if "reason" in dropped:
        dropped = dropped[dropped["reason"].isin(["missing alliance", "missing outcome"])]
    parts = [panel.data[columns], dropped[[c for c in columns if c in dropped]]]
    return pd.concat([p for p in parts if len(p)], ignore_index=True)


def fit_mlm(panel: AlliancePanel, **options: Any) -> tuple[np.ndarray, np.ndarray, tuple[Any, Any], list[str]]:
    """Fit both equations.

    Returns
    -------
    paths, vcov, fits, notes
        Raw-scale paths in :data:`.impulse.PATHS` order, their covariance (block
        diagonal: the two equations are separate fits, so their cross-covariance is
        unknown and set to 0), the two :class:`AllianceFit` objects, and notes.
    """
    if 1 not in panel.leads:
        raise PylmeError("method='mlm' needs the outcome one session ahead; prepare the panel with leads "
                         "including 1")
    roles = panel.roles
    # the therapist term as everywhere else (AllianceModel's default, "auto"), decided once
    # on the alliance->outcome fit and kept for the mirror so both equations match
    forward = AllianceModel(lead=1, **options).fit(panel)
    model = forward.model
    therapist = model.therapist
    mirror_panel = prepare(source_frame(panel), patient=roles["patient"], session=roles["session"],
                           alliance=roles["outcome"], outcome=roles["alliance"],
                           therapist=roles.get("therapist"), within=panel.within, leads=(1,),
                           early_sessions=panel.early_sessions)
    mirror = model.fit(mirror_panel)
    # mirror: "alliance_within" is the outcome deviation at t, "outcome_within" the alliance
    terms = [(mirror, "outcome_within"), (mirror, "alliance_within"),
             (forward, "outcome_within"), (forward, "alliance_within")]
    paths = np.array([float(fit.fixef()[term]) for fit, term in terms])
    vcov = np.zeros((4, 4))
    for block, fit in ((slice(0, 2), mirror), (slice(2, 4), forward)):
        names = [term for f, term in terms if f is fit]
        vcov[block, block] = fit.vcov().loc[names, names].to_numpy(dtype=float)
    notes = [f"two separate lme4 fits (therapist={therapist!r}); the impulse-response intervals treat "
             "the two equations as independent", MLM_BIAS]
    return paths, vcov, (forward, mirror), notes
