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
from typing import Any, Dict, List, Optional, Tuple

import torch

from rlg_hotreload.reload.gpu_copy import settle, to_device_aside

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


def write_blob(state: Dict[str, torch.Tensor], env_state: Any) -> Tuple[int, Dict[str, Any]]:
    """Child: tensors (and a small torch.save of env_state) into one new blob.

    Returns the open descriptor (the caller closes it after the parent has opened it) and the reply
    table: ``fd`` (memfd) or ``path`` (named), ``tensors`` and ``env``.
    """
    if use_memfd():
        fd = os.memfd_create(PREFIX + "blob", getattr(os, "MFD_CLOEXEC", 0))
        where: Dict[str, Any] = {"fd": fd}
    else:
        fd, path = tempfile.mkstemp(prefix=PREFIX, suffix=".bin", dir=named_blob_dir())
        where = {"path": path}
    table: List[List[Any]] = []
    try:
        with os.fdopen(os.dup(fd), "wb") as f:
            for key, t in state.items():
                t = t.contiguous()
                f.write(b"\0" * ((-f.tell()) % ALIGN))
                offset = f.tell()
                if t.numel():
                    f.write(memoryview(t.view(-1).view(torch.uint8).numpy()))
                table.append([key, str(t.dtype), list(t.shape), offset, t.numel()])
            env_offset, env_len = f.tell(), 0
            if env_state is not None:  # usually None: then the parent unpickles nothing
                env = io.BytesIO()
                torch.save(env_state, env)
                env_len = f.write(env.getvalue())
    except OSError as e:
        discard(fd, where)
        if e.errno in NO_SPACE_ERRNOS:
            raise NoSpace(e.errno, "no room for the shared-memory blob (%s)" % e.strerror) from e
        raise
    where.update(tensors=table, env=[env_offset, env_len])
    return fd, where


def discard(fd: Optional[int], where: Dict[str, Any]) -> None:
    """Child: drop a blob (its descriptor, and its name if it has one and the parent did not unlink it)."""
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
    reply: Dict[str, Any], child_pid: int, devices: Dict[str, torch.device], maps: Optional[List[Any]] = None
) -> Tuple[Dict[str, torch.Tensor], Optional[bytes]]:
    """Parent: zero-copy tensors over the child's blob; returns (state, env_state bytes or None).

    ``maps``: the mapping is appended to it, so that the caller decides on which thread it is unmapped
    (see ``ProcessLoader``); otherwise it goes with the last tensor over it.
    """
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
    state: Dict[str, torch.Tensor] = {}
    for key, dtype, shape, offset, numel in reply["tensors"]:
        dt = dtype_from_name(dtype)
        t = torch.frombuffer(mm, dtype=dt, count=numel, offset=offset) if numel else torch.empty(0, dtype=dt)
        t = t.view(shape)
        if devices[key].type == "cpu":
            t.sum()  # fault the pages in here, not in the player's first forward pass (measured: +45 ms)
        else:
            t = to_device_aside(t, devices[key])
        state[key] = t
    settle(devices[key] for key, *_ in reply["tensors"])
    env_off, env_len = reply["env"]
    env = bytes(mm[env_off : env_off + env_len]) if env_len and mm is not None else None
    if maps is not None and mm is not None:
        maps.append(mm)
    return state, env
