"""PushT: push a T-shaped block across the table until it covers a goal T (Diffusion Policy's task).

One SO-100 arm (``assets/so100.xml``) pushes with its closed fingers; the block slides on the
table. The success measure is the Diffusion Policy paper's: the fraction of the goal T's area
that the block covers.

**Action space** ``Box(6)``: joint position targets in radians for ``shoulder_pan, shoulder_lift,
elbow_flex, wrist_flex, wrist_roll`` and the gripper in [0, 1] (0 closed, 1 open); limits from
``configs/robots/so100.yaml``. Actions outside the limits are clipped.

**Observation space** ``Dict``:
- ``state`` (6,) float32: measured joint positions in the action's layout.
- ``env_state`` (27,) float32: block position (3, m) and orientation (6-D rotation
  representation: the first two columns of its rotation matrix), then the goal's position (3)
  and orientation (6); then what a push depends on, measured for the policy: the end effector's
  position (3, m), the end effector's x-y in the block's frame (2, m), the block's x-y in the
  goal's frame (2, m) and the sine and cosine of the block's yaw minus the goal's (2). The
  block's origin is the centre of the T's bar.
- ``images/<camera>`` (H, W, 3) uint8 for each camera in ``cameras`` (``obs_mode`` images/both).
- ``timestamp`` (): simulation time in seconds.

**The block**: a T 8 cm across and 8 cm tall (bar 8 × 2 cm, stem 2 × 6 cm), 3 cm thick,
100 g, friction 0.5 against the table and the fingers.

**Reward** (dense, for diagnostics): ``min(coverage / 0.95, 1)``; ``info["coverage"]`` reports
the coverage (the goal T's area covered by the block, over its area, on a 1 mm grid) at every
step.

**Start state**: arm raised, tool down, end effector at (0.15, 0, 0.09) m, gripper open.
The goal T is fixed: centre of its bar at (0.21, 0) m, turned π/4. The block starts at a
uniformly random yaw and its bar centre uniformly in the annulus r ∈ [0.17, 0.25] m, bearing ∈
[-0.35, 0.35] rad around the arm's base, resampled while it covers more than half of the goal.
Everything random comes from the ``reset`` seed.

**Episode end**: terminated on success — coverage ≥ 95%; truncated after ``time_limit_s``
(20 s). ``info["is_success"]`` reports success at every step.

**Arguments**: ``obs_mode`` ("state" never creates a renderer; "images"; "both"), ``cameras``
(any of top, front, wrist), ``image_size`` (H, W), ``render_mode`` ("rgb_array"),
``render_size`` (H, W) for ``render()``, ``time_limit_s``; ``camera_fps`` and
``camera_latency_ms`` (images captured at the camera's rate, shown late), ``perturb`` (scene
cameras and lights changed per episode from its seed); see ``envs/base.py``. The wrist camera
moves with the hand and is never perturbed.

Control runs at 50 Hz with 10 physics substeps of 2 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from envs.base import CONTROL_HZ, ArmTaskEnv, finish, new_scene, rot6d
from envs.so100 import ArmIK

BAR_HALF = (0.04, 0.01)  # the bar: 8 x 2 cm, centred on the block's origin
STEM_HALF = (0.01, 0.03)  # the stem: 2 x 6 cm, under the bar
STEM_Y = -0.04
HEIGHT_HALF = 0.015
GOAL_POSE = np.array([0.21, 0.0, np.pi / 4])  # x, y (m), yaw (rad)
SUCCESS_COVERAGE = 0.95
# The T's outline in its own frame, counter-clockwise.
OUTLINE = np.array(
    [
        [-0.04, 0.01],
        [-0.04, -0.01],
        [-0.01, -0.01],
        [-0.01, -0.07],
        [0.01, -0.07],
        [0.01, -0.01],
        [0.04, -0.01],
        [0.04, 0.01],
    ]
)


def inside_t(local_xy: np.ndarray) -> np.ndarray:
    """Which points (N, 2), in the T's own frame, lie inside the T."""
    x, y = local_xy[..., 0], local_xy[..., 1]
    bar = (np.abs(x) <= BAR_HALF[0]) & (np.abs(y) <= BAR_HALF[1])
    stem = (np.abs(x) <= STEM_HALF[0]) & (np.abs(y - STEM_Y) <= STEM_HALF[1])
    return bar | stem


def _grid(step: float = 0.001) -> np.ndarray:
    xs = np.arange(-0.04 + step / 2, 0.04, step)
    ys = np.arange(-0.07 + step / 2, 0.01, step)
    pts = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    return pts[inside_t(pts)]


GRID = _grid()  # points filling the T, 1 mm apart, in its own frame


def rotate(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def to_world(pose: np.ndarray, local_xy: np.ndarray) -> np.ndarray:
    c, s = np.cos(pose[2]), np.sin(pose[2])
    return local_xy @ np.array([[c, s], [-s, c]]) + pose[:2]


def to_local(pose: np.ndarray, world_xy: np.ndarray) -> np.ndarray:
    c, s = np.cos(pose[2]), np.sin(pose[2])
    return (world_xy - pose[:2]) @ np.array([[c, -s], [s, c]])


def coverage(block: np.ndarray, goal: np.ndarray) -> float:
    """Fraction of the goal T's area the block covers; poses are (x, y, yaw)."""
    return float(inside_t(to_local(block, to_world(goal, GRID))).mean())


def outline_error(block: np.ndarray, goal: np.ndarray) -> float:
    """Mean distance (m) between the block's outline corners and the goal's."""
    return float(np.linalg.norm(to_world(block, OUTLINE) - to_world(goal, OUTLINE), axis=1).mean())


def outline_errors(poses: np.ndarray, goal_outline: np.ndarray) -> np.ndarray:
    """``outline_error`` of many poses (N, 3) against a goal outline already in the world."""
    c, s = np.cos(poses[:, 2])[:, None], np.sin(poses[:, 2])[:, None]
    x, y = OUTLINE[:, 0], OUTLINE[:, 1]
    wx, wy = poses[:, :1] + c * x - s * y, poses[:, 1:2] + s * x + c * y
    return np.hypot(wx - goal_outline[:, 0], wy - goal_outline[:, 1]).mean(axis=1)


def planar_pose(pos: np.ndarray, mat: np.ndarray) -> np.ndarray:
    m = np.asarray(mat).reshape(3, 3)
    return np.array([pos[0], pos[1], np.arctan2(m[1, 0], m[0, 0])])


def add_t_block(body: mujoco.MjsBody, rgba: list[float], solid: bool, prefix: str = "") -> None:
    """The T's two boxes on ``body``; ``solid=False`` makes a flat, non-colliding goal marker."""
    half_z = HEIGHT_HALF if solid else 0.0005
    style: dict = {"type": mujoco.mjtGeom.mjGEOM_BOX, "rgba": rgba}
    if solid:
        style |= {"density": 0.1 / (2 * HEIGHT_HALF * 0.0028), "friction": [0.5, 0.005, 0.0001]}
        style |= {"priority": 1}  # its friction rules its contacts with the table and fingers
    else:
        style |= {"contype": 0, "conaffinity": 0}
    body.add_geom(name=f"{prefix}bar", size=[*BAR_HALF, half_z], **style)
    body.add_geom(name=f"{prefix}stem", pos=[0, STEM_Y, 0], size=[*STEM_HALF, half_z], **style)


class PushTEnv(ArmTaskEnv):
    CAMERAS = ("top", "front", "wrist")
    ENV_STATE_DIM = 27
    TIME_LIMIT_S = 20.0
    HOME = np.array([0.0, 0.08, 1.52, 1.54, 0.0])  # tool down, 9 cm up: clear of the block
    EXPERT_SUCCESS = 0.90  # pushing is harder to script; failures are discarded when recording

    def build_model(self, max_render: tuple[int, int]) -> mujoco.MjModel:
        spec = new_scene("push_t", {"": ([0, 0, 0], [1, 0, 0, 0])}, max_render)
        world = spec.worldbody
        block = world.add_body(name="block", pos=[0.2, 0, HEIGHT_HALF])
        block.add_freejoint(name="block")
        add_t_block(block, [0.45, 0.55, 0.75, 1], solid=True)
        goal = world.add_body(name="goal", pos=[*GOAL_POSE[:2], 0.0005], mocap=True)
        goal.quat = [np.cos(GOAL_POSE[2] / 2), 0, 0, np.sin(GOAL_POSE[2] / 2)]
        add_t_block(goal, [0.1, 0.7, 0.2, 1], solid=False, prefix="goal_")
        world.add_camera(name="top", pos=[0.2, 0.0, 0.5], xyaxes=[0, -1, 0, 1, 0, 0], fovy=45)
        world.add_camera(name="front", pos=[0.6, 0.0, 0.3], xyaxes=[0, 1, 0, -0.45, 0, 0.89], fovy=50)
        model = finish(spec)
        self._block_qpos = model.joint("block").qposadr[0]
        self._block_body = model.body("block").id
        self._goal_body = model.body("goal").id
        self._ee = model.site("ee").id
        return model

    def block_pose(self) -> np.ndarray:
        d = self.data
        return planar_pose(d.xpos[self._block_body], d.xmat[self._block_body])

    def place_objects(self, rng: np.random.Generator) -> None:
        while True:
            r, bearing, yaw = rng.uniform(0.17, 0.25), rng.uniform(-0.35, 0.35), rng.uniform(-np.pi, np.pi)
            pose = np.array([r * np.cos(bearing), r * np.sin(bearing), yaw])
            if coverage(pose, GOAL_POSE) <= 0.5:
                break
        q = self._block_qpos
        self.data.qpos[q : q + 7] = [*pose[:2], HEIGHT_HALF, np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]

    def env_state(self) -> np.ndarray:
        d = self.data
        b, g = self._block_body, self._goal_body
        block, ee = self.block_pose(), d.site_xpos[self._ee]
        # The pusher seen from the block, and the block seen from the goal (the Diffusion Policy
        # paper's low-dimensional PushT observation holds the pusher's position too).
        pusher = to_local(block, ee[None, :2])[0]
        from_goal = to_local(GOAL_POSE, block[None, :2])[0]
        turn = block[2] - GOAL_POSE[2]
        relative = [*ee, *pusher, *from_goal, np.sin(turn), np.cos(turn)]
        return np.concatenate([d.xpos[b], rot6d(d.xmat[b]), d.xpos[g], rot6d(d.xmat[g]), relative])

    def coverage(self) -> float:
        return coverage(self.block_pose(), GOAL_POSE)

    def success(self) -> bool:
        # The base class asks for success first, then the reward and the info: measure once.
        self._coverage = self.coverage()
        return self._coverage >= SUCCESS_COVERAGE

    def reward(self, success: bool) -> float:
        return min(self._coverage / SUCCESS_COVERAGE, 1.0)

    def extra_info(self) -> dict:
        return {"coverage": self._coverage}

    def expert(self) -> PushTExpert:
        """A scripted policy (observation -> action) that solves this task from ``env_state``."""
        return PushTExpert(self.model)


# ---------------------------------------------------------------------------------- the expert
PUSHER_HALF = (0.008, 0.012)  # the closed fingers' footprint: along the hand's x, along its y
Z_PUSH = 0.03  # end-effector height while pushing
Z_AIR = 0.07  # end-effector height while moving between pushes (fingertips clear the block)
CONTACT_Z = 0.018  # height on the fingers that should meet the block
GAP = 0.008  # free travel before the fingers reach the block
REACH = (0.12, 0.33)
CONTROL_DT = 1.0 / CONTROL_HZ  # end-effector radius (m) the pushes stay within


@dataclass
class Push:
    start: np.ndarray  # (2,) where the pusher comes down
    direction: np.ndarray  # (2,) unit vector
    length: float  # travel from ``start`` (m)
    speed: float  # m per control tick
    predicted_error: float


def pose_from_env_state(env_state: np.ndarray, offset: int) -> np.ndarray:
    pos, r6 = env_state[offset : offset + 3], env_state[offset + 3 : offset + 9]
    return np.array([pos[0], pos[1], np.arctan2(r6[1], r6[0])])


class PushPlanner:
    """Chooses the next push by trying candidates in a small model of the block and a pusher.

    Candidates push the block's edges (every 1 cm, square on and ±20°); each is simulated once,
    and every tick of its travel is a candidate length. The winner brings the block's outline
    closest to the goal's.
    """

    def __init__(self) -> None:
        spec = mujoco.MjSpec()
        spec.option.timestep = 0.002
        spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
        spec.worldbody.add_geom(
            type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0.8, 0.8, 0.01], friction=[1.0, 0.01, 0.001]
        )
        block = spec.worldbody.add_body(name="block", pos=[0, 0, HEIGHT_HALF])
        block.add_freejoint(name="block")
        add_t_block(block, [1, 1, 1, 1], solid=True)
        pusher = spec.worldbody.add_body(name="pusher", pos=[0, 0, 0.5], mocap=True)
        pusher.add_geom(
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[*PUSHER_HALF, 0.02],
            pos=[0, 0, 0.025],
            friction=[2, 0.05, 0],
        )
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self._block = self.model.body("block").id
        self.candidates = self._edge_candidates()

    @staticmethod
    def _edge_candidates() -> list[tuple[np.ndarray, np.ndarray]]:
        """(contact point, push direction) pairs in the block's frame."""
        out = []
        n = len(OUTLINE)
        for i in range(n):
            a, b = OUTLINE[i], OUTLINE[(i + 1) % n]
            edge = b - a
            length = float(np.linalg.norm(edge))
            tangent = edge / length
            inward = np.array([-tangent[1], tangent[0]])  # left of a counter-clockwise edge
            count = max(1, int(round(length / 0.01)) - 1)
            for t in np.linspace(0, 1, count + 2)[1:-1]:
                point = a + edge * t
                out += [(point, rotate(inward, angle)) for angle in (0.0, -0.35, 0.35)]
        return out

    def _clear_of_block(self, pose: np.ndarray, center: np.ndarray, direction: np.ndarray) -> bool:
        side = np.array([-direction[1], direction[0]])
        corners = np.array(
            [
                center + direction * dx + side * dy
                for dx in (-PUSHER_HALF[0], PUSHER_HALF[0])
                for dy in (-PUSHER_HALF[1], 0, PUSHER_HALF[1])
            ]
        )
        return not inside_t(to_local(pose, corners)).any()

    def plan(self, block: np.ndarray, goal: np.ndarray) -> Push | None:
        error = outline_error(block, goal)
        speed = 0.002 if error > 0.01 else 0.001
        max_push = float(np.clip(3 * error, 0.006, 0.04))
        ticks = int(np.ceil((GAP + max_push) / speed))
        first = int(np.ceil(GAP / speed))  # the first tick that can have moved the block
        # Far from the goal a coarse simulation chooses as well as a fine one, at a third of the cost.
        substeps = 2 if error > 0.015 else 5
        m, d = self.model, self.data
        m.opt.timestep = CONTROL_DT / substeps
        goal_outline = to_world(goal, OUTLINE)
        best: Push | None = None
        poses = np.zeros((ticks, 3))
        for point, direction in self.candidates:
            contact = to_world(block, point[None])[0]
            dirw = rotate(direction, block[2])
            start = contact - dirw * (PUSHER_HALF[0] + GAP)
            end = start + dirw * (GAP + max_push)
            if not all(REACH[0] <= np.linalg.norm(p) <= REACH[1] for p in (start, end)):
                continue
            if not self._clear_of_block(block, start, dirw):
                continue
            mujoco.mj_resetData(m, d)
            d.qpos[:7] = [block[0], block[1], HEIGHT_HALF, np.cos(block[2] / 2), 0, 0, np.sin(block[2] / 2)]
            yaw = np.arctan2(dirw[1], dirw[0])
            d.mocap_quat[0] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
            for k in range(ticks):
                d.mocap_pos[0] = [*(start + dirw * speed * (k + 1)), 0.0]
                mujoco.mj_step(m, d, nstep=substeps)
                poses[k] = planar_pose(d.xpos[self._block], d.xmat[self._block])
            errors = outline_errors(poses[first - 1 :], goal_outline)
            k = int(np.argmin(errors))
            if best is None or errors[k] < best.predicted_error:
                best = Push(start, dirw, speed * (first + k), speed, float(errors[k]))
        if best is None or best.predicted_error >= error - 2e-4:
            return None
        return best


class PusherDriver:
    """Moves the closed fingers of one arm smoothly to points, tool pointing down where it can.

    The tool may tilt (it only asks IK for a downward pointing direction, softly) so the pushes
    reach farther than a tool held vertical; the commanded point is shifted so that the fingers
    meet the block at ``CONTACT_Z`` whatever the tilt. The wrist roll turns the fingers' broad
    face square to the direction of travel.
    """

    DOWN = np.array([0.0, 0.0, -1.0])

    def __init__(self, model: mujoco.MjModel, max_dq: float = 0.045) -> None:
        self.ik = ArmIK(model)
        self.max_dq = max_dq
        self.q_cmd: np.ndarray | None = None
        self.ref: np.ndarray | None = None
        self.roll_dir = np.array([1.0, 0.0])
        self.gripper = 0.0

    def start(self, state6: np.ndarray) -> None:
        self.q_cmd = np.asarray(state6[:5], dtype=np.float64).copy()
        self.ref = self.ik.forward(self.q_cmd)[0]
        self.gripper = float(state6[5])

    def step(self, goal: np.ndarray, max_step_m: float) -> tuple[np.ndarray, bool]:
        goal = np.asarray(goal, dtype=np.float64)
        delta = goal - self.ref
        dist = float(np.linalg.norm(delta))
        self.ref = goal.copy() if dist <= max_step_m else self.ref + delta * (max_step_m / dist)
        target = self.ref.copy()
        axis = self.ik.forward(self.q_cmd)[1][:, 2]
        if target[2] < Z_AIR - 1e-3 and axis[2] < -0.3:
            # Aim the point of the fingers at CONTACT_Z, not the end effector, at the reference.
            target[:2] -= axis[:2] * (CONTACT_Z - target[2]) / axis[2]
        q = self.ik.solve(self.q_cmd, target, axis=self.DOWN, iters=10, rot_weight=0.005)
        q[4] = self._roll(q)
        self.q_cmd = self.q_cmd + np.clip(q - self.q_cmd, -self.max_dq, self.max_dq)
        self.gripper = max(0.0, self.gripper - 0.1)  # close the fingers into one pusher
        return np.concatenate([self.q_cmd, [self.gripper]]), dist <= max_step_m

    def _roll(self, q: np.ndarray) -> float:
        """The wrist roll that points the hand's x axis along ``roll_dir`` (either way round)."""
        q0 = q.copy()
        q0[4] = 0.0
        rot = self.ik.forward(q0)[1]
        d3 = np.array([*self.roll_dir, 0.0])
        base = np.arctan2(rot[:, 1] @ d3, rot[:, 0] @ d3)
        options = base + np.array([-2, -1, 0, 1, 2]) * np.pi
        options = options[(options >= self.ik.lower[4]) & (options <= self.ik.upper[4])]
        return float(options[np.argmin(np.abs(options - self.q_cmd[4]))])


class PushTExpert:
    """Scripted pushing: plan a push in a small model, carry it out with the arm, look again.

    Each push: move above its start at ``Z_AIR``, come down, push along the chosen direction for
    the chosen length at the chosen speed, back off 5 mm, lift. Closed loop on ``env_state``: the
    next push is planned from where the block actually ended up.
    """

    AIR_STEP = 0.005

    def __init__(self, model: mujoco.MjModel) -> None:
        self.driver = PusherDriver(model)
        self.planner = PushPlanner()
        self.queue: list[tuple[np.ndarray, float]] = []
        self.started = False

    def _plan(self, env_state: np.ndarray) -> None:
        block, goal = pose_from_env_state(env_state, 0), pose_from_env_state(env_state, 9)
        push = self.planner.plan(block, goal)
        here = self.driver.ref
        if push is None:  # nothing improves: wait where we are
            self.queue = [(np.array([here[0], here[1], max(here[2], Z_AIR)]), self.AIR_STEP)] * 5
            return
        self.driver.roll_dir = push.direction
        end = push.start + push.direction * push.length
        back = end - push.direction * 0.005
        self.queue = [
            (np.array([here[0], here[1], Z_AIR]), self.AIR_STEP),
            (np.array([*push.start, Z_AIR]), self.AIR_STEP),
            (np.array([*push.start, Z_PUSH]), self.AIR_STEP),
            (np.array([*end, Z_PUSH]), push.speed),
            (np.array([*back, Z_PUSH]), 0.002),
        ]

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        env_state = np.asarray(obs["env_state"], dtype=np.float64)
        if not self.started:
            self.driver.start(np.asarray(obs["state"], dtype=np.float64))
            self.started = True
        if not self.queue:
            self._plan(env_state)
        goal, step = self.queue[0]
        action, reached = self.driver.step(goal, step)
        if reached:
            self.queue.pop(0)
        return action.astype(np.float32)
