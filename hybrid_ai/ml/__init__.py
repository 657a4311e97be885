"""Classical ML decision stages."""

from ._stages import TextClassifierStage

__all__ = ["TextClassifierStage"]
