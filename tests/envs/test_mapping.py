"""Third-party gymnasium environments through a mapping file (envs/mapping.py)."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

from envs.mapping import EnvMapping, MappedEnv, select
from imitation.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


class _Toy(gym.Env):
    """A Dict-observation env: a point moves by its action; success when it reaches x >= 1."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Dict(
            {
                "agent": gym.spaces.Box(-10, 10, (3,), np.float32),
                "pixels": gym.spaces.Box(0, 255, (40, 60, 3), np.uint8),
            }
        )
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.pos = np.zeros(3, np.float32)

    def _obs(self):
        img = np.zeros((40, 60, 3), np.uint8)
        img[..., 0] = 200
        return {"agent": self.pos.copy(), "pixels": img}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = np.array([0, self.np_random.uniform(-1, 1), 7], np.float32)
        return self._obs(), {}

    def step(self, action):
        self.pos[:2] += action
        return (
            self._obs(),
            float(self.pos[0]),
            False,
            False,
            {"done_flag": self.pos[0] >= 1, "x": float(self.pos[0])},
        )


if "test/Toy-v0" not in gym.registry:
    gym.register("test/Toy-v0", entry_point=_Toy, max_episode_steps=10)


def _mapping(tmp_path: Path, **over) -> Path:
    raw = {
        "env_id": "test/Toy-v0",
        "state": "agent[0:2]",
        "env_state": "agent[2:]",
        "images": {"cam": {"from": "pixels", "size": [20, 30]}},
        "success": {"info": "x", "min": 1.0},
    } | over
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_selectors() -> None:
    flat = np.arange(10.0)
    assert select(flat, "[2:5]").tolist() == [2, 3, 4]
    assert select(flat, "[-2:]").tolist() == [8, 9]
    d = {"a": np.arange(4.0)}
    assert select(d, "a").tolist() == [0, 1, 2, 3]
    assert select(d, "a[1:3]").tolist() == [1, 2]
    with pytest.raises(ConfigError, match="no key 'b'"):
        select(d, "b")


def test_mapped_dict_env(tmp_path: Path) -> None:
    env = MappedEnv(_mapping(tmp_path), obs_mode="both")
    obs, info = env.reset(seed=3)
    assert set(obs) == {"state", "env_state", "images/cam", "timestamp"}
    assert obs["state"].shape == (2,) and obs["env_state"].tolist() == [7.0]
    assert obs["images/cam"].shape == (20, 30, 3) and obs["images/cam"][..., 0].min() == 200
    assert env.observation_space.contains(obs)
    assert env.arm.control_hz == pytest.approx(10.0)  # no dt, no render_fps: 10 Hz
    obs, _, term, trunc, info = env.step(np.array([0.6, 0], np.float32))
    assert not term and not info["is_success"] and obs["timestamp"] == pytest.approx(0.1)
    obs, _, term, trunc, info = env.step(np.array([0.6, 0], np.float32))
    assert term and info["is_success"]
    # Without termination on success, the episode runs to the time limit.
    env = MappedEnv(_mapping(tmp_path, terminate_on_success=False))
    env.reset(seed=0)
    for _ in range(9):
        _, _, term, trunc, info = env.step(np.array([1, 0], np.float32))
        assert not term and not trunc and info["is_success"]
    _, _, term, trunc, _ = env.step(np.array([1, 0], np.float32))
    assert trunc and not term


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"colour": 1}, "unknown key"),
        ({"state": "a[1:2"}, "not a selector"),
        ({"success": {"min": 1}}, "success="),
        ({"images": {"cam": {"from": "pixels"}}}, "needs 'size"),
    ],
)
def test_bad_mappings(tmp_path: Path, over: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EnvMapping.load(_mapping(tmp_path, **over))


def test_missing_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        EnvMapping.load(tmp_path / "nope.yaml")


def test_pusher_record_train_eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Gymnasium's own Pusher-v5, end to end through configs/envs/pusher.yaml: a simple scripted
    policy records episodes, a small ACT trains briefly, and the evaluator rolls it out."""
    from imitation.data.store import DemoStore
    from imitation.evaluate import EvalConfig, evaluate
    from imitation.record import RecordConfig, record_scripted
    from imitation.train import TrainConfig, train

    monkeypatch.chdir(REPO)
    store = tmp_path / "pusher.zarr"
    rec = RecordConfig(
        env="configs/envs/pusher.yaml", episodes=3, keep_failed=True, out=store, obs_mode="both", seed=0
    )
    assert record_scripted(rec, progress=False)["episodes"] == 3
    s = DemoStore.open(store)
    assert s.n_episodes == 3
    shapes = {k: tuple(f.shape) for k, f in s.features.items()}
    assert shapes["state"] == (14,) and shapes["env_state"] == (9,) and shapes["action"] == (7,)
    assert shapes["images/front"] == (96, 96, 3)
    from imitation.config import load_yaml

    cfg = load_yaml(TrainConfig, REPO / "configs/train/pick_place_act_state.yaml")
    cfg.store, cfg.out, cfg.steps, cfg.batch_size = str(store), str(tmp_path / "run"), 4, 8
    cfg.val_fraction, cfg.save_every, cfg.wandb = 0.0, 4, "disabled"
    # The PickPlace config turns samples about its base; Pusher declares no such symmetry.
    cfg.augment_yaw = 0.0
    cfg.act.obs_keys = ("state", "env_state", "images/front")  # a camera too: the policy sees it
    # Set at 50 Hz; Pusher runs at 20 Hz: the same spans in seconds, converted.
    cfg.rescale = True
    train(cfg)
    assert cfg.act.chunk_size == 40 and cfg.fps == 20
    summary = evaluate(
        EvalConfig(
            checkpoint=str(tmp_path / "run"),
            episodes=4,
            num_envs=2,
            seed=100,
            out=str(tmp_path / "ev"),
            videos=1,
        ),
        progress=False,
    )
    assert summary["env"] == "configs/envs/pusher.yaml" and summary["episodes"] == 4
    record = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert [e["seed"] for e in record["episodes"]] == [100, 101, 102, 103]
    assert all(e["length"] == 100 or e["success"] for e in record["episodes"])
    assert (tmp_path / "ev" / "episode_seed100_failure.mp4").exists() or (
        tmp_path / "ev" / "episode_seed100_success.mp4"
    ).exists()
    # The store and the checkpoint keep where each camera rendered from; a mapping that renders the
    # policy's camera from elsewhere (the file edited since, or another one) is refused before any
    # rollout, unless forced.
    from imitation.checkpoint import read_meta
    from imitation.errors import ConfigError

    assert s.robot["camera_sources"] == {"front": "render"}
    assert read_meta(tmp_path / "run")["robot"]["camera_sources"] == {"front": "render"}
    moved = yaml.safe_load((REPO / "configs/envs/pusher.yaml").read_text())
    moved["images"]["front"]["from"] = "camera:elsewhere"
    (tmp_path / "moved.yaml").write_text(yaml.safe_dump(moved))
    again = EvalConfig(checkpoint=str(tmp_path / "run"), env=str(tmp_path / "moved.yaml"), episodes=1,
                       seed=100, out=str(tmp_path / "ev2"))  # fmt: skip
    with pytest.raises(ConfigError, match=r"\(front: render -> camera:elsewhere\).*or --force"):
        evaluate(again, progress=False)
    assert not (tmp_path / "ev2" / "results.json").exists()


def _code_mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **over) -> tuple[Path, Path, str]:
    """A mapping naming a module whose import leaves a marker file; returns (mapping, marker, module)."""
    module = f"planted_{tmp_path.name.replace('-', '_')}"
    marker = tmp_path / "imported"
    (tmp_path / f"{module}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\nclass Env: pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    fields = {
        key: value.replace("MOD", module) if isinstance(value, str) else value for key, value in over.items()
    }
    if "imports" in fields:
        fields["imports"] = [m.replace("MOD", module) for m in fields["imports"]]
    return _mapping(tmp_path, **fields), marker, module


@pytest.mark.parametrize(
    "over, what",
    [
        ({"imports": ["MOD"]}, "imports: "),
        ({"expert": "MOD:Env"}, "expert: "),
        ({"env_id": "MOD:Env"}, "env_id: "),
    ],
)
def test_a_task_read_from_a_file_never_imports_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, over: dict, what: str
) -> None:
    """A mapping named by a checkpoint or a store is only read as YAML; one that would import a
    module is refused with the flag that makes it run; the user's own --env may import it."""
    import sys

    from envs.mapping import check_env_id

    path, marker, module = _code_mapping(tmp_path, monkeypatch, **over)
    with pytest.raises(ConfigError) as e:
        check_env_id(str(path), trusted=False, origin="checkpoint runs/x")
    msg = str(e.value)
    assert msg.startswith("checkpoint runs/x names the task") and what + module in msg
    assert f"pass --env {path} on the command line" in msg and "\n" not in msg
    assert not marker.exists() and module not in sys.modules
    check_env_id(str(path), trusted=True)  # named by the user: allowed (imported when the env is made)


def test_tasks_that_import_nothing_foreign_are_fine_from_a_file(tmp_path: Path) -> None:
    from envs.mapping import check_env_id

    check_env_id("imitation/PickPlace-v0", trusted=False)
    check_env_id(str(_mapping(tmp_path)), trusted=False)
    # This project's own envs package is not foreign code: the shipped Pusher mapping's expert.
    check_env_id(str(REPO / "configs/envs/pusher.yaml"), trusted=False)
    with pytest.raises(ConfigError, match="unknown simulated task"):
        check_env_id("gymnasium_robotics:FetchReach-v4", trusted=False)


def test_camera_changes_compare_only_what_both_sides_know(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from envs.mapping import camera_changes, recorded_env
    from imitation.evaluate import check_camera_sources

    path = _mapping(tmp_path)  # images.cam from the observation's "pixels"
    assert recorded_env(str(path))["camera_sources"] == {"cam": "pixels"}
    assert camera_changes(str(path), {"cam": "pixels"}, ["cam"]) == []
    assert camera_changes(str(path), {"cam": "render"}, ["cam"]) == ["cam: render -> pixels"]
    # Nothing recorded (an older store), a camera the mapping lacks, a task of envs/: nothing to say.
    assert camera_changes(str(path), {}, ["cam"]) == []
    assert camera_changes(str(path), {"wrist": "render"}, ["wrist"]) == []
    assert camera_changes("imitation/PickPlace-v0", {"top": "x"}, ["top"]) == []
    meta = {"robot": {"cameras": {"images/cam": [20, 30, 3]}, "camera_sources": {"cam": "render"}}}
    with pytest.raises(ConfigError, match=r"\(cam: render -> pixels\).*ckpt would see views"):
        check_camera_sources(str(path), meta, Path("ckpt"), force=False)
    with caplog.at_level("WARNING"):
        check_camera_sources(str(path), meta, Path("ckpt"), force=True)
    assert "cam: render -> pixels" in caplog.text and "--force" in caplog.text
