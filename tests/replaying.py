"""Recorded actions re-executed in simulation, without the safety layer or a safe start: what the
determinism tests compare against the recording (``imitation replay`` drives a robot instead)."""

import importlib

import numpy as np

import envs
from imitation.robots.sim import SimRobot


def first_camera(env_id: str) -> tuple[str, ...] | None:
    """A task's first camera (SimRobot's default, "top", is not every task's); None for others."""
    if env_id not in envs.ENVS:
        return None
    module, _, name = envs.ENVS[env_id].partition(":")
    return (getattr(importlib.import_module(module), name).CAMERAS[0],)


def replay_actions(env_id: str, seed: int, actions: np.ndarray) -> tuple[list[np.ndarray], bool]:
    """Re-execute recorded actions from the episode's seed: the states seen and final success."""
    robot = SimRobot(env_id, cameras=first_camera(env_id))
    with robot:
        robot.reset(seed)
        states = []
        for a in actions:
            states.append(robot.observe()["state"].copy())
            robot.act(a)
        return states, bool(robot.info.get("is_success"))
