"""Fusion: combine predictions (``fuse``) and apply rule decisions by precedence (``decide``)."""

from ._stages import DecideStage, FuseStage
from ._strategies import FUSION_STRATEGIES, FusionStrategy

__all__ = ["FUSION_STRATEGIES", "DecideStage", "FuseStage", "FusionStrategy"]
