"""Data-parallel training on ``torch.distributed``: the process group and the few collectives
the training loop needs.

``torchrun --nproc_per_node=G -m hrm_rl.train …`` starts G copies of the same command; torchrun
tells each its place through the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``). :func:`init_world` reads it and joins the process group: NCCL
when the ranks train on CUDA, gloo on CPU. A plain ``python -m hrm_rl.train`` (no ``WORLD_SIZE``)
gets the one-process :class:`World`, whose collectives return their input, so the loop has one
code path and a single process runs exactly as it did before distributed training existed.

What the loop does with it (``hrm_rl.train``): every rank builds the same model from the same seed
(rank 0's parameters are also broadcast), plays its own envs from its own seed stream, and after
every backward pass :meth:`World.average_gradients` averages the gradients, so the optimisers take
identical steps and the parameters stay bit-identical. Frame counts, finished episodes (for the
curriculum) and the stop decision are agreed on every iteration; rank 0 alone logs, evaluates and
writes checkpoints, which hold every rank's episode and RNG state.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)

BACKENDS = ("auto", "nccl", "gloo")


@dataclass
class World:
    """This process's place among the ranks of a run (one rank, no process group, by default)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: no process group
    device: torch.device = torch.device("cpu")  # where collectives put their tensors

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs, evaluates and writes checkpoints."""
        return self.rank == 0

    @property
    def joined(self) -> bool:
        """Whether this process is in a process group (collectives talk to other ranks)."""
        return self.backend is not None

    def rank_seed(self, seed: int) -> int:
        """The seed of this rank's own random streams: ``seed`` itself on rank 0 (so a
        one-process run is unchanged), a different stream derived from ``(seed, rank)`` on the
        others."""
        if self.rank == 0:
            return int(seed)
        return int(np.random.SeedSequence([int(seed), self.rank]).generate_state(1)[0])

    # --- collectives (each returns its input when the process is alone) ----------------------

    def sum(self, value: int | float) -> int | float:
        """The sum of ``value`` over the ranks."""
        if not self.joined:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        total = tensor.item()
        return int(round(total)) if isinstance(value, int) else total

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any rank."""
        return bool(self.sum(int(flag)) > 0) if self.joined else bool(flag)

    def all_gather_values(self, value: int | float) -> list:
        """``value`` of every rank, in rank order."""
        if not self.joined:
            return [value]
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        out = [torch.empty_like(tensor) for _ in range(self.size)]
        dist.all_gather(out, tensor)
        kind = type(value)
        return [kind(t.item()) for t in out]

    def cat(self, tensor: torch.Tensor) -> torch.Tensor:
        """The 1-D ``tensor`` of every rank, concatenated in rank order (lengths may differ)."""
        if not self.joined:
            return tensor
        lengths = self.all_gather_values(int(tensor.numel()))
        wire = torch.uint8 if tensor.dtype == torch.bool else tensor.dtype  # gloo has no bool
        padded = torch.zeros(max(lengths), dtype=wire, device=self.device)
        padded[: tensor.numel()] = tensor.reshape(-1).to(self.device, wire)
        out = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(out, padded)
        joined = torch.cat([t[:n] for t, n in zip(out, lengths, strict=True)])
        return joined.to(tensor.device, tensor.dtype)

    def gather_objects(self, obj: Any) -> list | None:
        """Every rank's picklable ``obj`` (tensors moved to CPU) on rank 0, in rank order;
        ``None`` on the other ranks."""
        obj = _to_cpu(obj)
        if not self.joined:
            return [obj]
        out = [None] * self.size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.joined:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    @torch.no_grad()
    def broadcast_parameters(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers into ``module`` on every rank."""
        if not self.joined:
            return
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)

    @torch.no_grad()
    def average_gradients(self, parameters: Iterable[nn.Parameter], finite: bool) -> bool:
        """Average every parameter's ``.grad`` over the ranks, in one all-reduce; returns whether
        the loss was finite on every rank (when not, the caller skips the step everywhere).

        A parameter without a gradient on some ranks counts as zero there; one without a
        gradient on every rank keeps ``grad = None``, as in a one-process run (AdamW then leaves
        it alone)."""
        params = [p for p in parameters if p.requires_grad]
        if not self.joined:
            return finite
        chunks = [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
            for p in params
        ]
        flags = torch.tensor(
            [float(p.grad is not None) for p in params] + [float(finite)], device=self.device
        )
        flat = torch.cat([c.to(self.device) for c in chunks] + [flags])
        dist.all_reduce(flat)
        grads, counts = flat[: -len(flags)], flat[-len(flags) :]
        offset = 0
        for p, has_grad in zip(params, counts[:-1].tolist(), strict=True):
            n = p.numel()
            if has_grad > 0:
                p.grad = (grads[offset : offset + n] / self.size).view_as(p).to(p.device, p.dtype)
            offset += n
        return bool(counts[-1].item() == self.size)

    def close(self) -> None:
        """Leave the process group (nothing when alone)."""
        if self.joined and dist.is_initialized():
            dist.destroy_process_group()


def init_world(device: str = "auto", backend: str = "auto", timeout_minutes: float = 30.0):
    """Join the process group that ``torchrun`` describes in the environment, or stay alone.

    Args:
        device: the run's ``device`` config: ``auto`` (CUDA when available), ``cpu``, ``cuda``
            or ``cuda:N``. Under torchrun, ``auto`` and ``cuda`` mean ``cuda:LOCAL_RANK``.
        backend: ``auto`` (NCCL on CUDA, gloo on CPU), ``nccl`` or ``gloo``.
        timeout_minutes: how long a collective waits for the slowest rank (rank 0 evaluates and
            writes checkpoints while the others wait).

    Returns:
        ``(world, device)``: this process's :class:`World` and the ``torch.device`` to train on.
    """
    if backend not in BACKENDS:
        raise ValueError(f"distributed.backend must be one of {BACKENDS}, got {backend!r}")
    if "WORLD_SIZE" not in os.environ:  # a plain one-process run
        return World(), _device(device, local_rank=None)
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    train_device = _device(device, local_rank)
    if backend == "auto":
        backend = "nccl" if train_device.type == "cuda" else "gloo"
    if backend == "nccl" and train_device.type != "cuda":
        raise ValueError(
            f"distributed.backend=nccl needs CUDA devices, but this rank trains on {train_device}"
        )
    if train_device.type == "cuda":
        torch.cuda.set_device(train_device)
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            timeout=datetime.timedelta(minutes=timeout_minutes),
            **({"device_id": train_device} if backend == "nccl" else {}),
        )
    world = World(
        rank=rank,
        size=size,
        local_rank=local_rank,
        backend=backend,
        device=train_device if backend == "nccl" else torch.device("cpu"),
    )
    log.info("rank %d of %d (%s) on %s", rank, size, backend, train_device)
    return world, train_device


def _device(device: str, local_rank: int | None) -> torch.device:
    """The training device of ``device`` for a rank with ``local_rank`` (None: no torchrun)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and local_rank is not None:
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"the rank with LOCAL_RANK={local_rank} needs CUDA device {local_rank}, but this "
                f"node has {torch.cuda.device_count()}: start at most that many ranks per node "
                "(--nproc_per_node), or train on the CPU with device=cpu"
            )
        return torch.device("cuda", local_rank)
    return torch.device(device)


def parameter_digest(module: nn.Module) -> str:
    """SHA-256 of the bytes of every parameter of ``module`` in order: equal digests mean
    bit-identical parameters."""
    digest = hashlib.sha256()
    for name, param in module.named_parameters():
        digest.update(name.encode())
        data = param.detach().to("cpu").contiguous().reshape(-1)
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _to_cpu(obj: Any) -> Any:
    """``obj`` with every tensor inside dicts, lists and tuples moved to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {key: _to_cpu(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(value) for value in obj)
    return obj
