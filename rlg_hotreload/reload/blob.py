"""Hand-over of loaded tensors from the loader child to the player: one raw blob, mapped without copying.

Why an anonymous ``memfd`` (Linux): a named file in ``/dev/shm`` outlives a process killed mid-write,
and with Docker's 64 MB ``/dev/shm`` the leftovers make every later load (and other programs) fail.
A memfd has no name: it is freed when the last descriptor and mapping are gone, whoever dies when.
The child keeps the descriptor of its last blob open until its next request; by then the parent has
opened it through ``/proc/<child>/fd/<n>`` and mapped it. Without memfd (macOS), a named file in
``/dev/shm`` (or the temp folder) is used, which the parent unlinks the moment it has opened it.

Running out of room (``ENOSPC``, ``ENOMEM``, ``EFBIG`` under ``ulimit -f``) is reported as
:class:`NoSpace`; the watcher then loads inline instead, with one warning.
"""

import errno
import io
import mmap
import os
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from rlg_hotreload.reload.gpu_copy import Staging, settle, to_device_aside
from rlg_hotreload.reload.slots import ChildSlots, SlotMaps

ALIGN = 64
NO_SPACE_ERRNOS = {errno.ENOSPC, errno.ENOMEM, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
PREFIX = "rlg-hotreload-"


class NoSpace(OSError):
    """No room for the blob (shared memory full, memory limit, file size limit)."""


def use_memfd() -> bool:
    return hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")


def named_blob_dir() -> str:
    """Where named blobs go when memfd is unavailable."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


def dtype_from_name(name: str) -> torch.dtype:
    return getattr(torch, name.replace("torch.", ""))


def blob_layout(state: Dict[str, torch.Tensor]) -> Tuple[List[List[Any]], int]:
    """The table (key, dtype, shape, offset, numel) of a blob of ``state``, and where its tensors end.

    Keys in sorted order: the same network gives the same layout (and size) whatever order a checkpoint
    lists its tensors in, so blobs made ahead from the network's shapes fit every checkpoint of it."""
    table: List[List[Any]] = []
    pos = 0
    for key, t in sorted(state.items()):
        pos += (-pos) % ALIGN
        table.append([key, str(t.dtype), list(t.shape), pos, t.numel()])
        pos += t.numel() * t.element_size()
    return table, pos


def _pwrite_all(fd: int, data: Any, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _no_space(e: OSError) -> OSError:
    if e.errno in NO_SPACE_ERRNOS:
        return NoSpace(e.errno, "no room for the shared-memory blob (%s)" % e.strerror)
    return e


def _new_blob(size: int) -> Tuple[int, Dict[str, Any]]:
    if use_memfd():
        fd = os.memfd_create(PREFIX + "blob", getattr(os, "MFD_CLOEXEC", 0))
        where: Dict[str, Any] = {"fd": fd}
    else:
        fd, path = tempfile.mkstemp(prefix=PREFIX, suffix=".bin", dir=named_blob_dir())
        where = {"path": path}
    try:
        os.ftruncate(fd, size)
    except OSError:
        discard(fd, where)
        raise
    return fd, where


def write_blob(
    state: Dict[str, torch.Tensor], env_state: Any, slots: Optional[ChildSlots] = None, free: Sequence[int] = ()
) -> Tuple[int, Dict[str, Any]]:
    """Child: tensors (and a small torch.save of env_state) into a blob: a free slot of the right size
    (see :mod:`rlg_hotreload.reload.slots`), else a new one, kept as a slot if one is unused.

    Returns the descriptor (the caller closes a non-slot one after the parent has opened it) and the reply
    table: ``fd`` (memfd) or ``path`` (named), ``slot`` (or None), ``size``, ``tensors`` and ``env``.
    """
    table, end = blob_layout(state)
    env = b""
    if env_state is not None:  # usually None: then the parent unpickles nothing
        buf = io.BytesIO()
        torch.save(env_state, buf)
        env = buf.getvalue()
    size = end + len(env)
    taken = slots.take(size, list(free)) if slots is not None and not env else None
    try:
        if taken is not None:
            fd, where = taken[1], {"fd": taken[1], "slot": taken[0]}
        else:
            fd, where = _new_blob(size)
    except OSError as e:
        raise _no_space(e) from e
    try:
        for key, _dtype, _shape, offset, numel in table:
            if numel:
                _pwrite_all(fd, state[key].contiguous().view(-1).view(torch.uint8).numpy(), offset)
        if env:
            _pwrite_all(fd, env, end)
    except OSError as e:
        discard(fd, where)  # a slot stays: the player will not read it, the next write overwrites it
        raise _no_space(e) from e
    if taken is None:
        where["slot"] = slots.adopt(fd, size) if slots is not None and not env and "fd" in where else None
    where.update(size=size, tensors=table, env=[end, len(env)])
    return fd, where


def prepare_slot(slots: ChildSlots, size: int) -> None:
    """Child, when idle: make the next slot ahead and touch its pages (see :mod:`rlg_hotreload.reload.slots`).

    No room is not an error here: the next load then makes its own blob, and reports it if that fails."""
    if not slots.wants_more(size) or not use_memfd():
        return
    try:
        fd, where = _new_blob(size)
    except OSError:
        slots.enabled = False  # out of room or descriptors: stop making blobs ahead
        return
    try:
        zeros = bytes(min(size, 1 << 20))
        for offset in range(0, size, len(zeros)):
            _pwrite_all(fd, zeros[: size - offset], offset)
    except OSError:
        discard(fd, where)
        slots.enabled = False
        return
    slots.add_unseen(fd, size)


def discard(fd: Optional[int], where: Dict[str, Any]) -> None:
    """Child: drop a blob (its descriptor, and its name if it has one and the parent did not unlink it);
    a slot's blob is kept (see :mod:`rlg_hotreload.reload.slots`)."""
    if where.get("slot") is not None:
        return
    if fd is not None:
        os.close(fd)
    path = where.get("path")
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass  # the parent unlinked it already: the normal case


def map_shared(fd: int, size: int) -> mmap.mmap:
    """A shared, writable mapping of the blob (copy-on-write only where ``MAP_SHARED`` is missing).

    Why shared: the blob is ours alone once mapped (the child closes its descriptor at its next
    request, a named blob is unlinked at once), and touching a shared mapping of it costs a tenth of
    a private one: 17 MB took 1.2-1.5 ms to fault in against 15 ms with ``ACCESS_COPY`` (2-core VM,
    memfd, measured), time spent on the watcher thread while the player plays.
    """
    if hasattr(mmap, "MAP_SHARED") and hasattr(mmap, "PROT_WRITE"):
        return mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    return mmap.mmap(fd, size, access=mmap.ACCESS_COPY)


def map_blob(
    reply: Dict[str, Any],
    child_pid: int,
    devices: Dict[str, torch.device],
    maps: Optional[List[Any]] = None,
    slots: Optional[SlotMaps] = None,
    staging: Optional[Staging] = None,
) -> Tuple[Dict[str, torch.Tensor], Optional[bytes]]:
    """Parent: zero-copy tensors over the child's blob; returns (state, env_state bytes or None).

    ``maps``: a one-off blob's mapping is appended to it, so that the caller decides on which thread it is
    unmapped (see ``ProcessLoader``); otherwise it goes with the last tensor over it. ``slots``: a slot's
    mapping is kept there and reused; its pages are then in this process's page tables already.
    ``staging``: pinned memory for the copies to a GPU (at the blob's own offsets).
    """
    slot = reply.get("slot")
    mm = slots.get(slot, reply["size"]) if slots is not None and slot is not None else None
    fresh = mm is None
    if fresh:
        mm = _open_blob(reply, child_pid)
        if slots is not None and slot is not None and mm is not None:
            slots.keep(slot, mm)
        elif maps is not None and mm is not None:
            maps.append(mm)
    state: Dict[str, torch.Tensor] = {}
    for key, dtype, shape, offset, numel in reply["tensors"]:
        dt = dtype_from_name(dtype)
        t = torch.frombuffer(mm, dtype=dt, count=numel, offset=offset) if numel else torch.empty(0, dtype=dt)
        t = t.view(shape)
        if devices[key].type == "cpu":
            if fresh:
                t.sum()  # fault the pages in here, not in the player's first forward pass (measured: +45 ms)
        else:
            region = staging.region(devices[key], t.numel() * t.element_size(), offset, t) if staging else None
            t = to_device_aside(t, devices[key], region)
        state[key] = t
    settle(devices[key] for key, *_ in reply["tensors"])
    env_off, env_len = reply["env"]
    env = bytes(mm[env_off : env_off + env_len]) if env_len and mm is not None else None
    return state, env


def _open_blob(reply: Dict[str, Any], child_pid: int) -> Optional[mmap.mmap]:
    if "fd" in reply:
        fd = os.open("/proc/%d/fd/%d" % (child_pid, reply["fd"]), os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    else:
        try:
            fd = os.open(reply["path"], os.O_RDWR)
        finally:
            os.unlink(reply["path"])  # nothing named outlives this line
    try:
        size = os.fstat(fd).st_size
        mm = map_shared(fd, size) if size else None
    finally:
        os.close(fd)
    return mm
