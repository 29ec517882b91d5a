"""Evaluation: K-shot and open-set protocols, retrieval metrics, speed and memory."""

from instrec.evaluation.compare import Row, Setting, compare, parse_setting, settings_from_options
from instrec.evaluation.datasets import EvalSplit, load_split
from instrec.evaluation.metrics import Candidate, QueryOutcome, summarise
from instrec.evaluation.runner import Run, evaluate, run

__all__ = [
    "Candidate",
    "EvalSplit",
    "QueryOutcome",
    "Row",
    "Run",
    "Setting",
    "compare",
    "evaluate",
    "load_split",
    "parse_setting",
    "run",
    "settings_from_options",
    "summarise",
]
