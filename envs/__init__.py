"""MuJoCo simulation tasks as gymnasium environments, registered under the ``imitation/`` namespace.

``ENVS`` is the registry: id -> entry point. Importing this package registers them with gymnasium.
"""

import gymnasium as gym

ENVS: dict[str, str] = {
    "imitation/PickPlace-v0": "envs.pick_place:PickPlaceEnv",
    "imitation/PushT-v0": "envs.push_t:PushTEnv",
    "imitation/TransferCube-v0": "envs.transfer_cube:TransferCubeEnv",
    "imitation/Insertion-v0": "envs.insertion:InsertionEnv",
}

for _id, _entry in ENVS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry)
