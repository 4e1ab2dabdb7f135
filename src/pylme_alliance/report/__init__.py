"""report: :func:`~.analyze.analyze` and the :class:`~.report.Report` it returns.

``analyze`` is a pipeline: ``plan`` (arguments -> what runs) -> the main fit ->
``parts`` (the independent fits, here or on an executor) -> ``assemble`` (tables,
figures, notes) -> ``Report``. ``tables``, ``wording``, ``figures``, ``render``,
``provenance`` and ``results_json`` shape what a reader sees and what is saved.
May import: analyses, models, panel, executors and everything below them, plus the
shared ``outfiles`` and ``canvas``. Never simulation (the two are siblings).
"""
