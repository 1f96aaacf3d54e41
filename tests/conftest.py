"""Test-wide settings: headless MuJoCo rendering and no wandb network access."""

import os

# Must be set before mujoco is imported anywhere; EGL renders without a display.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("WANDB_MODE", "disabled")
