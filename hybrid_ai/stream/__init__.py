"""Stream stages: state across cases, such as keyed sliding windows that rules can read.

Usage: ``stage("window", key="fields.sector", when="sentiment.label == 'negative'", size=20)``.
"""

from ._window import WindowStage

__all__ = ["WindowStage"]
