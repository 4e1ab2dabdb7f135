"""panel: session-by-session data made ready for the alliance models.

Owns :func:`~.prepare.prepare` and :class:`~.data.AlliancePanel`: the data checks
(``_checks``), leads by session number (``_leads``), the within/between split of the
alliance (``_centering``), moderators (``_moderators``) and the log of dropped rows.
May import: ``errors`` only (pandas/numpy for the rest). Imported by models and above;
it never fits anything and never starts R.
"""
