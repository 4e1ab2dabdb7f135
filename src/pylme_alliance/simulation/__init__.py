"""simulation: trials with known truth, the bundled example trial, and power.

Owns :func:`~.simulate.simulate` (its generator ``_generate`` and argument checks
``_simchecks``), the example trial (``example``), and :func:`~.power.power` with its
per-replicate fitting (``_power_fit``) and :class:`~.power_result.PowerResult`.
May import: analyses, models, panel, executors and everything below them, plus the
shared ``outfiles`` and ``canvas``. Never report (the two are siblings).
"""
