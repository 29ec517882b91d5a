"""Evaluation: K-shot and open-set protocols, retrieval metrics, speed and memory."""

from instrec.evaluation.datasets import EvalSplit, load_split
from instrec.evaluation.metrics import QueryOutcome, summarise
from instrec.evaluation.runner import evaluate

__all__ = ["EvalSplit", "QueryOutcome", "evaluate", "load_split", "summarise"]
