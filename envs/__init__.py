"""MuJoCo simulation tasks as gymnasium environments, registered under the ``imitation/`` namespace.

``ENVS`` is the registry: id -> entry point. Importing this package registers them with gymnasium.
``TASK_NAMES`` (id -> the task's short name, its module's: the prefix of its shipped configs,
``configs/train/<name>_<policy>_<obs>.yaml``) follows from it; adding a task is its module, a line
here and its configs.
"""

import gymnasium as gym

ENVS: dict[str, str] = {
    "imitation/PickPlace-v0": "envs.pick_place:PickPlaceEnv",
    "imitation/PushT-v0": "envs.push_t:PushTEnv",
    "imitation/TransferCube-v0": "envs.transfer_cube:TransferCubeEnv",
    "imitation/Insertion-v0": "envs.insertion:InsertionEnv",
    "imitation/AlohaTransferCube-v0": "envs.aloha_transfer_cube:AlohaTransferCubeEnv",
}

TASK_NAMES: dict[str, str] = {_id: _entry.split(":")[0].rsplit(".", 1)[-1] for _id, _entry in ENVS.items()}

for _id, _entry in ENVS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry)


def first_camera(env_id: str) -> str:
    """The camera a task of envs/ renders when none is named (its ``CAMERAS[0]``: ``top`` for the
    SO-100 tasks, ``cam_high`` for ALOHA's)."""
    import importlib

    module, cls = ENVS[env_id].split(":")
    return getattr(importlib.import_module(module), cls).CAMERAS[0]
