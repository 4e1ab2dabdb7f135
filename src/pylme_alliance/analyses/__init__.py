"""analyses: the study's questions answered with several models.

Owns the between-patient level model (``between``), duration over leads
(``duration``), moderator screening with adjusted p (``moderation``) and the
statsmodels cross-check of the alliance model (``crosscheck``).
May import: models, panel, sm_crosscheck, engines, results, errors, progress.
Never report or simulation.
"""
