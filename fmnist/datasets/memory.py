"""Is there room for a dataset? Checked from its size before anything is decoded."""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from ..errors import UsageError

DATA_SHARE = 0.5  # the data may take half the free memory: the model, its activations and a float batch need the rest


def _cgroup_free() -> int | None:
    """What a container's memory limit leaves, where there is one (cgroup v2)."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None


def free_cpu_memory() -> int | None:
    """Bytes the system can still give: MemAvailable, bounded by a cgroup's limit; None where neither can be read."""
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = None
    limited = _cgroup_free()
    return min(v for v in (free, limited) if v is not None) if (free, limited) != (None, None) else None


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def check_room(label: str, images: int, shape: tuple[int, ...], device: torch.device, native: tuple[int, ...] | None = None) -> None:
    """Refuse a dataset whose uint8 images (and, while converting, their native copy) would not fit."""
    need = images * (math.prod(shape) + (math.prod(native) if native and tuple(native) != tuple(shape) else 0))
    places = [("this machine", free_cpu_memory())]
    if device.type == "cuda":
        places.append((str(device), torch.cuda.mem_get_info(device)[0]))
    for where, free in places:
        if free is not None and need > DATA_SHARE * free:
            raise UsageError(f"{label}: {images:,} images of {'x'.join(map(str, shape))} need {_gib(need)} as uint8; "
                             f"{where} has {_gib(free)} free and the data may take at most {DATA_SHARE:.0%} of it "
                             f"(resize smaller, or use fewer images)")
