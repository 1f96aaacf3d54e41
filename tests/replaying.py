"""Recorded actions re-executed in simulation, without the safety layer or a safe start: what the
determinism tests compare against the recording (``imitation replay`` drives a robot instead)."""

import numpy as np

from imitation.robots.sim import SimRobot


def replay_actions(env_id: str, seed: int, actions: np.ndarray) -> tuple[list[np.ndarray], bool]:
    """Re-execute recorded actions from the episode's seed: the states seen and final success."""
    robot = SimRobot(env_id)
    with robot:
        robot.reset(seed)
        states = []
        for a in actions:
            states.append(robot.observe()["state"].copy())
            robot.act(a)
        return states, bool(robot.info.get("is_success"))
