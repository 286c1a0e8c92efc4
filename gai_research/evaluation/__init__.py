"""Evaluation of model outputs against reference labels.

- ``metrics``: the statistics (proportions with confidence intervals, ROC/AUC with
  DeLong, FROC/CPM, screening measures, agreement, latency);
- ``protocol``: evaluation protocols (``evaluation/*.yaml``), their schema and content hash;
- ``cases``: the per-case table (predictions beside the reference and subgroups);
- ``context``, ``endpoints``, ``plots``, ``notebook_lib``: what the evaluation notebooks
  call; ``comparisons``: paired DeLong comparisons of models;
- ``jobs``: papermill notebook jobs, locally or on Dask; ``tracking``: MLflow records;
- ``runner``: ``evaluate(protocol)``, the whole evaluation (``gai evaluate``);
- ``samples``: hand-made per-case tables for tests and benchmarks.

Nothing is imported here, so ``import gai_research.evaluation`` stays cheap; import
the module you need. docs/evaluation.md describes the whole engine.
"""
