"""Insertion (bimanual): each arm picks one part, and the peg goes into the socket in the air.

Two SO-100 arms face each other as in TransferCube (``left/`` at x = -0.21 m, ``right/`` at
x = +0.21 m). The left arm picks the socket, the right arm the peg (the ACT paper's task, with
parts sized for this arm's reach).

**Action space** ``Box(12)``: the left arm's 5 joint targets (rad) and gripper [0, 1], then the
right arm's.

**Observation space** ``Dict``: ``state`` (12,); ``env_state`` (18,) socket position (m) and
orientation (6-D rotation representation), then the peg's; ``images/<camera>`` for cameras top,
front, left_wrist, right_wrist; ``timestamp`` (s).

**The parts**: the socket is a 4 cm cup, open at its +x end (outer section 3.4 cm, inner 2.6 cm,
40 g); the peg a 5 × 1.8 × 1.8 cm block (25 g). Friction 1.2.

**Reward** (diagnostics): ``-|peg tip - socket mouth| + 5·success``.

**Start state**: arms at home, grippers open. The socket lies on the -y side of the table and
the peg on the +y side, each 19–23 cm from its own arm's base at 0.3–0.7 rad off straight ahead,
long axis within ±0.3 rad of the x axis (socket mouth toward +x).

**Episode end**: terminated on success — the peg's tip is at least 1.5 cm inside the socket,
within the socket's bore; truncated after ``time_limit_s`` (14 s).

**Arguments**: those of every arm task (``envs/base.py``): ``obs_mode``, ``cameras``,
``image_size``, ``render_mode``, ``render_size``, ``time_limit_s``, ``camera_fps`` and
``camera_latency_ms`` (images captured at the camera's rate, shown late), ``perturb`` (the top and
front cameras and the lights changed per episode from its seed; the wrist cameras never).

Control at 50 Hz, 10 physics substeps of 2 ms.
"""

from __future__ import annotations

import mujoco
import numpy as np

from envs.base import BimanualTaskEnv, TwoArmExpert, finish, rot6d
from envs.so100 import nearest_grasp_yaw

BASE_X = BimanualTaskEnv.BASE_X
SOCKET_LEN, SOCKET_OUT, SOCKET_IN = 0.04, 0.017, 0.013  # length, outer and inner half-widths
WALL = SOCKET_OUT - SOCKET_IN
PEG_HALF = (0.025, 0.009, 0.009)
SOCKET_GRASP = 0.008  # left grasp point: this far from the socket centre toward its closed end
PEG_GRASP = 0.01  # right grasp point: this far from the peg centre toward its outer end
ASSEMBLY_Z = 0.07
LEFT_ASSEMBLY = np.array([-0.035, 0.0, ASSEMBLY_Z])  # left hand while the peg goes in


class InsertionEnv(BimanualTaskEnv):
    ENV_STATE_DIM = 18
    TIME_LIMIT_S = 14.0

    def build_model(self, max_render: tuple[int, int]) -> mujoco.MjModel:
        spec = self.two_arm_scene("insertion", max_render)
        world = spec.worldbody
        box = mujoco.mjtGeom.mjGEOM_BOX
        style = {"friction": [1.2, 0.05, 0.001], "condim": 4, "rgba": [0.2, 0.35, 0.8, 1]}
        socket = world.add_body(name="socket", pos=[-0.02, 0, SOCKET_OUT])
        socket.add_freejoint(name="socket")
        half = SOCKET_LEN / 2
        for name, pos, size in (
            ("socket_top", [0, 0, SOCKET_OUT - WALL / 2], [half, SOCKET_OUT, WALL / 2]),
            ("socket_bottom", [0, 0, -SOCKET_OUT + WALL / 2], [half, SOCKET_OUT, WALL / 2]),
            ("socket_left", [0, SOCKET_OUT - WALL / 2, 0], [half, WALL / 2, SOCKET_IN]),
            ("socket_right", [0, -SOCKET_OUT + WALL / 2, 0], [half, WALL / 2, SOCKET_IN]),
            ("socket_cap", [-half + WALL / 2, 0, 0], [WALL / 2, SOCKET_IN, SOCKET_IN]),
        ):
            socket.add_geom(name=name, type=box, pos=pos, size=size, mass=0.008, **style)
        peg = world.add_body(name="peg", pos=[0.04, 0, PEG_HALF[2]])
        peg.add_freejoint(name="peg")
        peg.add_geom(
            name="peg", type=box, size=list(PEG_HALF), mass=0.025, **{**style, "rgba": [0.85, 0.15, 0.15, 1]}
        )
        model = finish(spec)
        self._socket_qpos, self._peg_qpos = model.joint("socket").qposadr[0], model.joint("peg").qposadr[0]
        self._socket_body, self._peg_body = model.body("socket").id, model.body("peg").id
        return model

    def place_objects(self, rng: np.random.Generator) -> None:
        # The socket on the -y side of the table, the peg on the +y side, so they never overlap.
        for qpos, side, z in ((self._socket_qpos, -1, SOCKET_OUT), (self._peg_qpos, 1, PEG_HALF[2])):
            r, bearing = rng.uniform(0.19, 0.23), rng.uniform(0.3, 0.7)
            x, y = side * (BASE_X - r * np.cos(bearing)), side * r * np.sin(bearing)
            yaw = rng.uniform(-0.3, 0.3)
            self.data.qpos[qpos : qpos + 7] = [x, y, z, np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]

    def env_state(self) -> np.ndarray:
        d = self.data
        return np.concatenate(
            [
                d.xpos[self._socket_body],
                rot6d(d.xmat[self._socket_body]),
                d.xpos[self._peg_body],
                rot6d(d.xmat[self._peg_body]),
            ]
        )

    def _tip_in_socket(self) -> np.ndarray:
        """The peg's inner tip in the socket's frame (x along the socket axis, mouth at +L/2)."""
        d = self.data
        peg_axis = d.xmat[self._peg_body].reshape(3, 3)[:, 0]
        socket_axis = d.xmat[self._socket_body].reshape(3, 3)[:, 0]
        tip = d.xpos[self._peg_body] - PEG_HALF[0] * peg_axis * np.sign(peg_axis @ socket_axis)
        return d.xmat[self._socket_body].reshape(3, 3).T @ (tip - d.xpos[self._socket_body])

    def success(self) -> bool:
        tip = self._tip_in_socket()
        depth = SOCKET_LEN / 2 - tip[0]
        return bool(depth >= 0.015 and abs(tip[1]) < SOCKET_IN and abs(tip[2]) < SOCKET_IN)

    def reward(self, success: bool) -> float:
        tip = self._tip_in_socket()
        return float(-np.linalg.norm(tip - [SOCKET_LEN / 2, 0, 0]) + 5.0 * success)

    def expert(self) -> InsertionExpert:
        return InsertionExpert(self.model)


def _axis(rot6: np.ndarray, toward_x: float) -> np.ndarray:
    """A part's long axis (its local x) flattened onto the table, pointing toward sign ``toward_x``."""
    a = np.array([rot6[0], rot6[1], 0.0])
    a /= np.linalg.norm(a)
    return a if a[0] * toward_x >= 0 else -a


class InsertionExpert(TwoArmExpert):
    """Both arms pick their part by its outer end, lift, and meet in the middle: the left holds
    the socket mouth toward +x, the right steers the peg's tip (closed loop on ``env_state``)
    to just outside the mouth, then pushes it in along the socket axis."""

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        es = self.begin(obs)
        s = np.asarray(obs["state"], dtype=np.float64)
        socket, peg = es[:3], es[9:12]
        s_axis, p_axis = _axis(es[3:9], 1.0), _axis(es[12:18], 1.0)  # both toward +x
        s_grasp = socket - SOCKET_GRASP * s_axis
        p_grasp = peg + PEG_GRASP * p_axis
        p = self.phase
        if p <= 2:  # pick both parts: fingers across each part's long axis
            if p <= 1:
                self.left.yaw = nearest_grasp_yaw(
                    np.arctan2(s_axis[1], s_axis[0]) + np.pi / 2, self.left.hand_yaw(), np.pi
                )
                self.right.yaw = nearest_grasp_yaw(
                    np.arctan2(p_axis[1], p_axis[0]) + np.pi / 2, self.right.hand_yaw(), np.pi
                )
            z = {0: 0.06, 1: None, 2: None}[p]
            left_goal = [s_grasp[0], s_grasp[1], z if z else socket[2] + 0.002]
            right_goal = [p_grasp[0], p_grasp[1], z if z else peg[2] + 0.002]
            grip = 0.0 if p == 2 else 1.0
            hold = (0, 3, 15)[p]
            left_grip = right_grip = grip
        elif p == 3:  # lift both
            left_goal = [s_grasp[0], s_grasp[1], ASSEMBLY_Z]
            right_goal = [p_grasp[0], p_grasp[1], ASSEMBLY_Z]
            left_grip = right_grip = 0.0
            hold = 0
        else:
            left_grip = right_grip = 0.0
            self.left.yaw = nearest_grasp_yaw(np.pi / 2, self.left.hand_yaw(), np.pi)
            self.right.yaw = nearest_grasp_yaw(np.pi / 2, self.right.hand_yaw(), np.pi)
            left_goal = LEFT_ASSEMBLY
            mouth = socket + SOCKET_LEN / 2 * s_axis
            tip = peg - PEG_HALF[0] * p_axis
            # Where the tip should be: just outside the mouth, then 2.2 cm inside, on the axis.
            want = mouth + (0.01 if p == 4 else -0.022) * s_axis
            want[2] = socket[2]
            # Closed loop through the grasp: the hand goes where it puts the tip where wanted.
            hand = self.right.ik.forward(s[6:11])[0]
            right_goal = want - (tip - hand)
            hold = 10 if p == 4 else 10**9
            if p == 4 and np.linalg.norm(want - tip) > 0.003:
                hold = 10**9  # keep steering until the tip waits at the mouth
        a_left, reached_left = self.left.step(left_goal, left_grip)
        a_right, reached_right = self.right.step(right_goal, right_grip)
        reached = reached_left and reached_right
        if p == 4:
            reached = reached_left
        if reached:
            self.hold += 1
            if self.hold > hold:
                self.phase, self.hold = self.phase + 1, 0
        elif p == 4:
            self.hold = 0
        return np.concatenate([a_left, a_right]).astype(np.float32)
