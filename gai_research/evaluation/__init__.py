"""Evaluation of model outputs against reference labels.

``gai_research.evaluation.metrics`` holds the statistics (proportions with confidence
intervals, ROC/AUC with DeLong, FROC/CPM, screening measures, agreement, latency).
Nothing is imported here, so ``import gai_research.evaluation`` stays cheap; import
the subpackage you need.
"""
