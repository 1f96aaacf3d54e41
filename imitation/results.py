"""Evaluation results, one format for simulation and for an arm: the episodes, the success rate
with its Wilson interval, a small plot, and ``results.json`` (the summary, the config and every
episode), written where nothing imitation did not write is replaced (``imitation.outputs``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imitation import outputs

# What an evaluation folder holds (imitation.outputs refuses to write among other files).
EVAL_FILES = ("results.json", "summary.png", "episode_seed*_success.mp4", "episode_seed*_failure.mp4")
EVAL_TEMPORARY = (".episode_seed*.mp4",)  # a video being filmed (left by a killed run)
RESULTS_LAYOUT = ("summary", "config", "episodes")  # results.json written before the mark existed


@dataclass
class Episode:
    """One evaluated episode: its scene seed, outcome, return and length in ticks; PushT's best
    coverage; the video filmed of it; the steps whose action was clipped to the action space."""

    seed: int
    success: bool
    ret: float
    length: int
    max_coverage: float | None = None
    video: str | None = None
    clipped_actions: int = 0


# ------------------------------------------------------------------------------ statistics
def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (Wilson 1927): sound near 0% and 100% too."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(episodes: Sequence[Episode]) -> dict[str, Any]:
    n = len(episodes)
    wins = sum(e.success for e in episodes)
    lo, hi = wilson_interval(wins, n)
    out = {
        "episodes": n,
        "successes": wins,
        "success_rate": wins / n if n else 0.0,
        "success_ci95": [lo, hi],
        "mean_return": float(np.mean([e.ret for e in episodes])) if n else 0.0,
        "mean_length": float(np.mean([e.length for e in episodes])) if n else 0.0,
        "min_length": min((e.length for e in episodes), default=0),
        "max_length": max((e.length for e in episodes), default=0),
    }
    cov = [e.max_coverage for e in episodes if e.max_coverage is not None]
    if cov:
        out["mean_max_coverage"] = float(np.mean(cov))
    return out


def write_plot(summary: dict[str, Any], episodes: Sequence[Episode], path: Path) -> None:
    """A small PNG: the success rate with its interval, and the episode lengths by outcome."""
    import cv2

    h, w = 240, 480
    img = np.full((h, w, 3), 255, np.uint8)
    # Success bar with its 95% interval.
    x0, x1, y0 = 30, 200, 200
    rate, (lo, hi) = summary["success_rate"], summary["success_ci95"]
    cv2.rectangle(img, (x0, y0 - int(160 * rate)), (x0 + 60, y0), (80, 160, 60), -1)
    cv2.line(img, (x0 + 30, y0 - int(160 * lo)), (x0 + 30, y0 - int(160 * hi)), (0, 0, 0), 2)
    cv2.putText(img, f"success {rate:.0%}", (x0 - 10, 225), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    cv2.putText(
        img,
        f"[{lo:.0%}, {hi:.0%}]",
        (x0 + 70, y0 - int(160 * rate)),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.4,
        (0, 0, 0),
        1,
    )
    # Episode lengths: one tick per episode, green success, red failure.
    lengths = [e.length for e in episodes]
    top = max(lengths) if lengths else 1
    for i, e in enumerate(episodes):
        x = x1 + 20 + int(240 * i / max(1, len(episodes)))
        colour = (80, 160, 60) if e.success else (200, 60, 60)  # RGB: green, red
        cv2.line(img, (x, y0), (x, y0 - int(160 * e.length / top)), colour, 1)
    cv2.putText(
        img, f"episode lengths (max {top})", (x1 + 20, 225), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1
    )
    outputs.write_png(path, img)


def write_results(
    folder: Path, summary: dict[str, Any], config: Mapping[str, Any], episodes: Sequence[Episode]
) -> dict[str, Any]:
    """Write the plot and ``results.json`` into ``folder``; returns the summary with their paths."""
    write_plot(summary, episodes, folder / "summary.png")
    summary["plot"] = str(folder / "summary.png")
    record = {"summary": summary, "config": dict(config), "episodes": [asdict(e) for e in episodes]}
    outputs.write_json(folder / "results.json", record, "eval")
    summary["results"] = str(folder / "results.json")
    return summary
