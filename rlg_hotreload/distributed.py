"""Multi-GPU training through rl-games' own ``torch.distributed`` path: which rank this process is, and
what that changes in the config.

Why its own module: rl-games reads ``LOCAL_RANK``/``RANK``/``WORLD_SIZE`` (set by ``torchrun``) when
``params.config.multi_gpu`` is true, starts NCCL, averages gradients and lets rank 0 alone write
checkpoints and TensorBoard files. Everything around that is ours to get right, and is decided here in
plain functions (testable without GPUs):

- each rank's env and policy live on ``cuda:<LOCAL_RANK>`` (rl-games moves the policy; the env we build
  must follow, or the first step mixes devices);
- every rank still creates a run folder; only rank 0's may be visible to ``checkpoint=latest``, so the
  other ranks write under ``<trainDir>/.rank<N>/`` (hidden folders are never followed);
- a launch that cannot work (``multi_gpu=true`` without torchrun, without CUDA, with a fixed device, or
  torchrun without ``multi_gpu=true``, which would train N unrelated copies on one GPU) is refused before
  anything starts.

Any number of GPUs and nodes works the same way: ``torchrun --nnodes=M --nproc_per_node=N``.
"""

import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

from rlg_hotreload.config import ConfigError


@dataclass(frozen=True)
class Ranks:
    """This process's place in a ``torchrun`` launch."""

    rank: int  # global rank: 0 writes checkpoints and summaries
    local_rank: int  # GPU index on this node
    world_size: int

    @property
    def device(self) -> str:
        return "cuda:%d" % self.local_rank

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class LaunchError(ConfigError):
    """A multi-GPU launch that cannot work, in one line (the CLI exits with code 2)."""


def ranks_from_env(environ: Optional[Mapping[str, str]] = None) -> Optional[Ranks]:
    """The ranks ``torchrun`` set in the environment, or None when this is not a distributed launch."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return None
    try:
        world = int(env["WORLD_SIZE"])
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", "0"))
    except ValueError as e:
        raise LaunchError("WORLD_SIZE/RANK/LOCAL_RANK must be whole numbers (%s)" % e) from e
    if world < 1 or not (0 <= rank < world) or local < 0:
        raise LaunchError("WORLD_SIZE=%d RANK=%d LOCAL_RANK=%d: not a valid launch" % (world, rank, local))
    return Ranks(rank=rank, local_rank=local, world_size=world)


def check_launch(multi_gpu: bool, ranks: Optional[Ranks], cuda_count: int, devices: Mapping[str, str],
                 training: bool) -> None:  # fmt: skip
    """Refuse launches that cannot work; ``devices`` are ``rl_device``/``sim_device`` as given."""
    if not multi_gpu:
        if ranks is not None and ranks.world_size > 1 and training:
            raise LaunchError(
                "multi_gpu=false under torchrun (WORLD_SIZE=%d): every process would train its own copy; "
                "add multi_gpu=true" % ranks.world_size
            )
        return
    if not training:
        raise LaunchError("multi_gpu=true: for training only; play with one process (drop multi_gpu)")
    if ranks is None:
        raise LaunchError(
            "multi_gpu=true: start it with torchrun, e.g. "
            "torchrun --nproc_per_node=2 -m rlg_hotreload.run config=train_headless multi_gpu=true"
        )
    if cuda_count == 0:
        raise LaunchError("multi_gpu=true: needs CUDA GPUs (rl-games uses NCCL); this machine has none")
    if ranks.local_rank >= cuda_count:
        raise LaunchError(
            "multi_gpu=true: LOCAL_RANK=%d but this machine has %d CUDA GPU(s); use --nproc_per_node<=%d"
            % (ranks.local_rank, cuda_count, cuda_count)
        )
    for key, value in devices.items():
        if str(value).strip().lower() != "auto":
            raise LaunchError(
                "%s=%s: with multi_gpu=true each rank uses cuda:<LOCAL_RANK>; allowed: auto" % (key, value)
            )


def apply_ranks(cfg: Dict[str, Any], ranks: Ranks) -> None:
    """Point this rank's env and policy at its GPU; ranks other than 0 write under a hidden folder."""
    cfg["rl_device"] = cfg["sim_device"] = ranks.device
    if not ranks.is_main:
        cfg["train"]["trainDir"] = os.path.join(cfg["train"]["trainDir"], ".rank%d" % ranks.rank)


def finish() -> None:
    """Leave the process group rl-games started (NCCL warns about leaked resources otherwise)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
