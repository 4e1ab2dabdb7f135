"""models: one alliance-outcome model, specified, fitted and interrogated.

Owns :class:`~.model.AllianceModel` (its engine spec ``spec``, model frame ``frame``),
:class:`~.fit.AllianceFit`, what each coefficient estimates (``estimands``), fit
diagnostics and design checks (``diagnostics``, ``design``, ``feasibility``,
``second_opinion``, ``choices`` for the therapist term), random terms at the boundary
(``boundary``: the intercepts the fixed part carries are removed), the boundary mixture
null of variance tests (``mixture``), and what is computed from one fitted model: heterogeneity of the
within effect and the random-slope test (``heterogeneity``, ``slope_test``) and
Johnson-Neyman regions (``johnson_neyman``); these read the fit through ``protocols``,
so ``fit`` can offer them as methods without a cycle.
May import: panel, engines, results, errors, progress. Never analyses, report or simulation.
"""
