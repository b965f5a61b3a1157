"""Which process of a data-parallel run this is, read from what torch's launcher (torchrun, or `fmnist run --nproc`)
sets in each worker's environment; no torch needed, so the command line can tell a writer from a quiet rank."""
from __future__ import annotations

import os
from dataclasses import dataclass

LAUNCHED = "TORCHELASTIC_RUN_ID"  # set by torch's elastic agent in every worker it starts


@dataclass(frozen=True)
class World:
    """rank of size processes in all; local_rank of local_size on this machine. One process: 0 of 1."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    launched: bool = False  # started by torch's launcher (so a process group is expected, even of size 1)

    @property
    def is_writer(self) -> bool:
        """Rank 0 owns the run folder and the console; the other ranks write nothing and print only errors."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.launched


def _integer(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def world_from_environment() -> World:
    """This process's place, from RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE (torchrun's variables)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return World()
    size = _integer("WORLD_SIZE", 1)
    return World(rank=_integer("RANK", 0), size=size, local_rank=_integer("LOCAL_RANK", 0),
                  local_size=_integer("LOCAL_WORLD_SIZE", size), launched=True)
