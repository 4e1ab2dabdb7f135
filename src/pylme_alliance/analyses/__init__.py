"""analyses: the study's questions answered with several models.

Owns the between-patient level model (``between``), duration over leads
(``duration``), reciprocal dynamics in lavaan with impulse responses
(``reciprocal``, ``reciprocal_fit``, ``reciprocal_mlm``, ``impulse``), moderator screening with adjusted p (``moderation``) and the
statsmodels cross-check of the alliance model (``crosscheck``).
May import: models, panel, sm_crosscheck, engines, results, bridge, errors, progress.
Never report or simulation.
"""
