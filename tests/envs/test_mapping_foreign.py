"""Third-party gymnasium environments through a mapping (``tests/fake_gym.py``): cheap rendering of
any MuJoCo env, what the labels of a mapped env's actions and state say, quiet warnings."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_gym import write_mapping

from envs.mapping import MappedEnv, check_env_id, locate
from imitation.errors import ConfigError
from imitation.robots.sim import SimRobot


def test_any_mujoco_env_renders_without_shadows_or_multisampling(tmp_path: Path) -> None:
    import mujoco

    # The env built its own mujoco.Renderer (64 x 64) at construction, with shadows and 8x multisampling.
    mapping = write_mapping(
        tmp_path, "fake/Shadowed-v0", images={"front": {"from": "render", "size": [32, 32]}}
    )
    env = MappedEnv(mapping, obs_mode="both")
    u = env.env.unwrapped
    assert (u.model.vis.quality.shadowsize, u.model.vis.quality.offsamples) == (0, 0)
    # The renderer built before was made again, on the same model and at the same size, so that its
    # GL context has no shadow map and no multisampled buffer.
    assert isinstance(u.renderer, mujoco.Renderer) and u.renderer.model is u.model
    assert (u.renderer.height, u.renderer.width) == (64, 64)
    assert (u.renderer._mjr_context.shadowSize, u.renderer._mjr_context.offSamples) == (0, 0)
    obs, _ = env.reset(seed=0)
    frame = obs["images/front"]
    assert frame.shape == (32, 32, 3) and frame.std() > 5  # a rendered scene
    env.close()


def test_a_mapping_named_by_a_checkpoint_is_found_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Demos recorded in project/ with --env configs/fake.yaml; eval runs elsewhere.
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "configs").mkdir(parents=True)
    elsewhere.mkdir()
    write_mapping(project / "configs", "fake/Wide-v0")
    monkeypatch.chdir(project)
    robot = SimRobot("configs/fake.yaml").spec.to_dict()
    assert robot["env_id"] == "configs/fake.yaml"
    assert robot["env_path"] == str(project / "configs/fake.yaml")
    ckpt = project / "runs/x/checkpoints/000010"
    assert locate(robot["env_id"], env_path=robot["env_path"], near=[ckpt]) == "configs/fake.yaml"

    monkeypatch.chdir(elsewhere)
    found = locate(robot["env_id"], env_path=robot["env_path"], near=[ckpt])
    assert found == robot["env_path"]
    # The project moved (the absolute path is stale): found beside the checkpoint's run.
    moved = tmp_path / "moved"
    (project).rename(moved)
    found = locate(robot["env_id"], env_path=robot["env_path"], near=[moved / "runs/x/checkpoints/000010"])
    assert found == str(moved / "configs/fake.yaml")
    with pytest.raises(ConfigError) as e:
        locate(robot["env_id"], env_path=robot["env_path"], near=[elsewhere], origin="checkpoint c")
    message = str(e.value)
    assert "\n" not in message and message.startswith("checkpoint c names the mapping 'configs/fake.yaml'")
    assert robot["env_path"] in message and "pass --env PATH" in message
    assert locate("imitation/PickPlace-v0", near=[elsewhere]) == "imitation/PickPlace-v0"


def test_a_mapping_found_elsewhere_still_may_not_import_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_mapping(tmp_path, "fake/Wide-v0", name="code.yaml", imports=["fake_gym"])
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    found = locate("code.yaml", env_path=None, near=[tmp_path / "run"], origin="checkpoint c")
    assert found == str(tmp_path / "code.yaml")
    with pytest.raises(ConfigError, match=f"pass --env {found} on the command line"):
        check_env_id(found, trusted=False, origin="checkpoint c")


def test_eval_finds_the_checkpoints_mapping_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fake_gym import ConstantPolicy, fake_checkpoint

    from imitation.evaluate import EvalConfig, evaluate

    (tmp_path / "project/configs").mkdir(parents=True)
    write_mapping(tmp_path / "project/configs", "fake/Truncating-v0")
    ckpt = fake_checkpoint(tmp_path / "project/runs/x", "configs/fake.yaml", 3, 2)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    cfg = EvalConfig(checkpoint=str(ckpt), episodes=2, num_envs=1, videos=0, out=str(tmp_path / "ev"))
    summary = evaluate(cfg, policy=ConstantPolicy(2), progress=False)
    assert summary["env"] == str(tmp_path / "project/configs/fake.yaml") and summary["episodes"] == 2
