"""report: :func:`~.analyze.analyze` and the :class:`~.report.Report` it returns.

``analyze`` is a pipeline: ``plan`` (arguments -> what runs) -> the main fit ->
``parts`` (the independent fits, the RI-CLPM among them, here or on an executor) ->
``assemble`` (tables, figures, notes) -> ``Report``. How a reader sees it: ``layout``
(the journal-style order: summary, data, methods, results, glossary, appendices),
``compact`` (tables with one status marker and its footnote), ``status`` (expected by
design vs real problems), ``glossary``, ``words``/``wording``/``dynamics_words`` (the
sentences), ``describe`` (the data section), ``tables``, ``figures``, ``render``
(Markdown and HTML), ``provenance`` and ``results_json`` (what is saved and loaded).
May import: analyses, models, panel, executors and everything below them, plus the
shared ``outfiles`` and ``canvas``. Never simulation (the two are siblings).
"""
