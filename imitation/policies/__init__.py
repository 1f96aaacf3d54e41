"""Policies: a plain registry from name to (config class, policy class).

A policy is one file: its config dataclass, its modules, and the policy class with
``forward(batch) -> (loss, metrics)``, ``predict_chunk(obs)``, ``select_action(obs)`` and
``reset(done_mask)``.
"""

from __future__ import annotations

from typing import Literal

from imitation.errors import ConfigError
from imitation.policies.act import ACTConfig, ACTPolicy
from imitation.policies.diffusion import DiffusionConfig, DiffusionPolicy

POLICIES: dict[str, tuple[type, type]] = {
    "act": (ACTConfig, ACTPolicy),
    "diffusion": (DiffusionConfig, DiffusionPolicy),
}
PolicyName = Literal[tuple(POLICIES)]  # type: ignore[valid-type]  # the names commands accept


def policy_classes(name: str) -> tuple[type, type]:
    if name not in POLICIES:
        raise ConfigError(f"unknown policy {name!r}; choose one of {sorted(POLICIES)}")
    return POLICIES[name]


__all__ = [
    "POLICIES",
    "PolicyName",
    "policy_classes",
    "ACTConfig",
    "ACTPolicy",
    "DiffusionConfig",
    "DiffusionPolicy",
]
