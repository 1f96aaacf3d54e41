"""Inference in CUDA graphs: a policy's prediction captured once per batch size, then replayed.

At batch 1 a policy's forward pass is hundreds of small kernels, and in eager mode the GPU waits
for Python to launch each one: Diffusion Policy's 10 DDIM steps took ~50 ms on an H200 for well
under a millisecond of arithmetic. A CUDA graph records the kernels of one call and replays them
with a single launch. ``CudaGraphs`` wraps a pure function of a dict of tensors:

- the first call with a new signature (keys, shapes, dtypes) warms the function up on a side
  stream, then captures it into a graph whose inputs are static buffers; every graph shares one
  memory pool;
- each call copies its inputs into the static buffers, replays, and returns a copy of the output.

Everything random stays outside the graph: Diffusion Policy's starting noise is drawn from each
environment's own generator, as in eager mode, and passed in as an input buffer, so seeded
rollouts give the same actions graphed or not (within the GPU's rounding). A capture that fails
(an operation that cannot be captured, too little memory) logs why and leaves the policy on its
eager path for good; ``IMITATION_CUDA_GRAPHS=0`` turns graphs off.

CUDA only: on a CPU a policy always runs eagerly. Tests compare graphed and eager outputs where a
GPU exists (marker ``gpu``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

log = logging.getLogger(__name__)

Signature = tuple[tuple[str, tuple[int, ...], torch.dtype], ...]


def graphs_enabled() -> bool:
    """False when ``IMITATION_CUDA_GRAPHS=0`` (or no CUDA)."""
    return os.environ.get("IMITATION_CUDA_GRAPHS", "1") != "0" and torch.cuda.is_available()


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: dict[str, Tensor]
    output: Tensor


class CudaGraphs:
    """``fn(inputs) -> Tensor`` replayed from a CUDA graph per input signature (module docstring)."""

    def __init__(self, fn: Callable[[dict[str, Tensor]], Tensor], name: str, warmup: int = 2) -> None:
        self.fn, self.name, self.warmup = fn, name, warmup
        self.graphs: dict[Signature, _Graph] = {}
        self.pool: tuple | None = None
        self.failed: str | None = None

    @staticmethod
    def signature(inputs: Mapping[str, Tensor]) -> Signature:
        return tuple((k, tuple(v.shape), v.dtype) for k, v in sorted(inputs.items()))

    def __call__(self, inputs: Mapping[str, Tensor]) -> Tensor | None:
        """The output of ``fn(inputs)`` from its graph, or None when graphs cannot serve (the
        caller then runs ``fn`` eagerly)."""
        if self.failed is not None:
            return None
        key = self.signature(inputs)
        entry = self.graphs.get(key)
        if entry is None:
            try:
                entry = self.graphs[key] = self._capture(inputs)
            except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
                self.failed = str(e).splitlines()[0] if str(e) else type(e).__name__
                log.warning("%s: CUDA graph capture failed (%s); running eagerly", self.name, self.failed)
                self.graphs.clear()
                return None
        for k, v in inputs.items():
            entry.inputs[k].copy_(v, non_blocking=True)
        entry.graph.replay()
        return entry.output.clone()

    def _capture(self, inputs: Mapping[str, Tensor]) -> _Graph:
        static = {k: v.detach().clone() for k, v in inputs.items()}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(self.warmup):  # lazy initialisation (cuDNN, cuBLAS handles) happens here
                self.fn(static)
        torch.cuda.current_stream().wait_stream(side)
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool), torch.no_grad():
            output = self.fn(static)
        log.info("%s: captured a CUDA graph for %s", self.name, [tuple(v.shape) for v in static.values()])
        return _Graph(graph, static, output)
