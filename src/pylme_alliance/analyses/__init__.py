"""analyses: the study's questions answered with several models.

Owns the between-patient level model (``between``), duration over leads (``duration``;
its total effects from the fitted dynamics in ``duration_total``), moderator screening
with adjusted p (``moderation``), reciprocal dynamics (``reciprocal``: RI-CLPM, DPM and
the multilevel pair, with ``reciprocal_fit``, ``reciprocal_mlm`` and the impulse
responses in ``impulse``) and the statsmodels cross-check of the alliance model
(``crosscheck``).
May import: models, panel, sm_crosscheck, engines, bridge, results, errors, progress.
Never report or simulation.
"""
