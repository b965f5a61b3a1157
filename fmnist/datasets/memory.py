"""Is there room for a dataset? Checked from its size before anything is decoded."""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from ..errors import UsageError

DATA_SHARE = 0.5  # the data may take half the free memory: the model, its activations and a float batch need the rest


CGROUP_ROOT = Path("/sys/fs/cgroup")
NO_LIMIT = 1 << 60  # cgroup v1 writes "no limit" as a number near 2**63


def _cgroup_paths() -> list[tuple[Path, str, str]]:
    """(folder, limit file, usage file) of this process's memory cgroup and of each above it, cgroup v1 (the memory
    controller's own hierarchy) or v2 (the unified one), from /proc/self/cgroup."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):  # v1
            base, files = CGROUP_ROOT / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes")
        elif controllers == "" and (CGROUP_ROOT / "cgroup.controllers").is_file():  # v2, mounted as the root
            base, files = CGROUP_ROOT, ("memory.max", "memory.current")
        else:
            continue
        folder = base / path.lstrip("/")
        while True:  # a limit anywhere above binds too
            found.append((folder, *files))
            if folder == base:
                break
            folder = folder.parent
    return found


def _cgroup_free() -> int | None:
    """What the tightest memory limit of the container (cgroup v1 or v2) this process is in leaves, or None."""
    free = None
    for folder, limit_file, usage_file in _cgroup_paths():
        try:
            limit = (folder / limit_file).read_text().strip()
            usage = int((folder / usage_file).read_text())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= NO_LIMIT:
            continue
        left = int(limit) - (usage - _inactive_files(folder))  # page cache not in use is given back on demand
        free = min(free, left) if free is not None else left
    return free


def _inactive_files(folder: Path) -> int:
    """Bytes of the cgroup's page cache not recently used (memory.stat), which the kernel reclaims before it refuses."""
    try:
        for line in (folder / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key in ("total_inactive_file", "inactive_file"):  # v1 (with its children), v2
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


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


def size_text(size: int) -> str:
    """Bytes as people read them: '1.4 GiB', '159 MiB'."""
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def short_of_room(need: int, device: torch.device) -> tuple[str, int] | None:
    """Where `need` bytes of data would not fit, and what is free there: this machine's memory, then the GPU a run
    trains on; None where it fits everywhere it would be held."""
    places = [("this machine", free_cpu_memory())]
    if device.type == "cuda":
        places.append((str(device), torch.cuda.mem_get_info(device)[0]))
    return next(((where, free) for where, free in places if free is not None and need > DATA_SHARE * free), None)


def check_room(label: str, images: int, shape: tuple[int, ...], device: torch.device,
               native: tuple[int, ...] | None = None) -> None:
    """Refuse a dataset whose uint8 images (and, while converting, their native copy) would not fit: in this machine's
    memory, and on a GPU the run trains on."""
    need = images * (math.prod(shape) + (math.prod(native) if native and tuple(native) != tuple(shape) else 0))
    short = short_of_room(need, device)
    if short is not None:
        where, free = short
        raise UsageError(f"{label}: {images:,} images of {'x'.join(map(str, shape))} need {size_text(need)} as uint8; "
                         f"{where} has {size_text(free)} free and the data may take at most {DATA_SHARE:.0%} of it "
                         f"(resize smaller, or use fewer images)")
