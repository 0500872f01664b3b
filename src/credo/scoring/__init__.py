"""The one definition of a score, and the engines that execute it.

* :mod:`credo.scoring.definition` -- the rules of docs/scoring.md as one SQL
  program over named input relations, rendered for DuckDB, Spark SQL,
  PostgreSQL and SQLite (:func:`~credo.scoring.definition.render`);
* :mod:`credo.scoring.relations` -- catalogs and questions ("scheme J on
  date t as known at k") as those input relations;
* :mod:`credo.scoring.online` -- one subject's score, explanation, rank and
  restoration forecast on the live database
  (:func:`~credo.scoring.online.score_subject`);
* :mod:`credo.scoring.batch` -- every subject of a scheme with DuckDB
  (Parquet export or Arrow, out of core) or Spark;
* :mod:`credo.scoring.spark_job` -- the same batch as a spark-submit job.

Worked example (Rongcheng, base 1000, A >= 960 > B): a court finds a
subject in breach (-50) on 2024-03-01. As of 2024-06-01 the score is 950,
grade B; the record is rectifiable and the national rectification period is
730 days, so with nothing new it is rectified on 2026-03-01 and the grade
returns to A that day.

>>> from credo.scoring.definition import OUTPUTS
>>> OUTPUTS
('statuses', 'explained', 'scores', 'ranked')
"""
