"""Simple scripted policies for third-party environments used through a mapping file.

They exist so that the whole pipeline (record -> train -> evaluate) can be run and tested on an
environment this project does not define; they are not strong experts.
"""

from __future__ import annotations

import mujoco
import numpy as np


class PusherReach:
    """Gymnasium ``Pusher-v5``: drive the fingertip behind the object (seen from the goal), then
    through it toward the goal, by damped least-squares velocity IK turned into joint torques.

    The arm often cannot bring its tip low enough next to its own base, so many episodes fail;
    record them with ``--keep-failed`` when all that matters is data to exercise the pipeline.
    """

    PUSH_Z = -0.25  # fingertip height while pushing (the object spans -0.325 .. -0.225)

    def __init__(self, env) -> None:  # noqa: ANN001 - a MappedEnv around Pusher-v5
        self.u = env.env.unwrapped
        m = self.u.model
        self.tip, self.obj, self.goal = (m.body(n).id for n in ("tips_arm", "object", "goal"))
        self.jac = np.zeros((3, m.nv))
        self.pushing = False

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        m, d = self.u.model, self.u.data
        tip, obj, goal = d.xpos[self.tip], d.xpos[self.obj], d.xpos[self.goal]
        heading = goal[:2] - obj[:2]
        heading /= max(float(np.linalg.norm(heading)), 1e-6)
        behind = obj[:2] - 0.09 * heading
        rel = tip[:2] - obj[:2]
        if not self.pushing and np.linalg.norm(tip[:2] - behind) < 0.03:
            self.pushing = True
        elif self.pushing and (
            rel @ -heading < 0.02 or abs(rel[0] * heading[1] - rel[1] * heading[0]) > 0.04
        ):
            self.pushing = False  # lost the object: go behind it again
        target = np.array([*(obj[:2] + 0.1 * heading if self.pushing else behind), self.PUSH_Z])
        mujoco.mj_jacBody(m, d, self.jac, None, self.tip)
        jac = self.jac[:, :7]
        qd = jac.T @ np.linalg.solve(jac @ jac.T + 1e-3 * np.eye(3), 4.0 * (target - tip))
        speed = float(np.linalg.norm(qd))
        if speed > 2.0:
            qd *= 2.0 / speed
        return np.clip(2.0 * (qd - d.qvel[:7]), -2.0, 2.0).astype(np.float32)
