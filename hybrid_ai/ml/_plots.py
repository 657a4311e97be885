"""PNG plots of an evaluation report: confusion matrix, reliability, ablation, cascade curve.

Usage: ``write_plots(report, "plots/")`` returns the paths written. matplotlib is optional
(``pip install "hybrid-ai[plots]"``); it is imported here only, with the Agg backend, so no
display is ever needed.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._errors import MissingDependencyError

__all__ = ["write_plots"]


def _pyplot() -> Any:
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError as exc:
        raise MissingDependencyError("matplotlib (plots)",
                                     'pip install "hybrid-ai[plots]"') from exc
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def write_plots(report: Mapping[str, Any], directory: str | Path) -> list[str]:
    """Write every plot the report has data for; returns the file paths."""
    plt = _pyplot()
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (("confusion.png", _confusion), ("reliability.png", _reliability),
                       ("ablation.png", _ablation), ("cascade.png", _cascade)):
        fig = draw(plt, report)
        if fig is None:
            continue
        path = folder / name
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(str(path))
    return written


def _confusion(plt: Any, report: Mapping[str, Any]) -> Any:
    found = report.get("confusion")
    if not found:
        return None
    labels, matrix = found["labels"], found["matrix"]
    size = min(14.0, 2.5 + 0.25 * len(labels))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(labels))
    show = len(labels) <= 30  # 77 intents make unreadable tick labels
    ax.set_xticks(list(ticks) if show else [])
    ax.set_yticks(list(ticks) if show else [])
    if show:
        ax.set_xticklabels(labels, rotation=90)
        ax.set_yticklabels(labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion (accuracy {report.get('accuracy', 0):.3f})")
    return fig


def _reliability(plt: Any, report: Mapping[str, Any]) -> Any:
    table = (report.get("calibration") or {}).get("reliability")
    if not table:
        return None
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.plot([r["confidence"] for r in table], [r["accuracy"] for r in table], marker="o")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {report['calibration']['ece']:.3f})")
    return fig


def _ablation(plt: Any, report: Mapping[str, Any]) -> Any:
    rows = report.get("ablation")
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(rows) + 1.2))
    ax.barh([r["removed"] for r in rows], [100 * r["delta_accuracy"] for r in rows])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("accuracy change when removed (points)")
    return fig


def _cascade(plt: Any, report: Mapping[str, Any]) -> Any:
    cascades = report.get("cascades")
    if not cascades:
        return None
    fig, ax = plt.subplots(figsize=(5, 4))
    for found in cascades:
        curve = found["curve"]
        ax.plot([100 * r["share_to_last"] for r in curve], [100 * r["accuracy"] for r in curve],
                marker="o", label=" > ".join(found["stages"]))
    ax.set_xlabel("share reaching the last stage (%)")
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=7)
    return fig
