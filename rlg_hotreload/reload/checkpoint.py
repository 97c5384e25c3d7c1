"""Reading one checkpoint file and deciding whether it may be swapped in.

Why so careful: rl-games writes checkpoints with a plain ``torch.save`` to the final path, rsync writes a
temp file and renames it, sync tools delete and recreate, and a diverged run writes NaN weights that kill
the player at its next step. A file is accepted only when it is a regular file no larger than
``maxCheckpointMB`` (a FIFO or ``/dev/zero`` behind a ``.pth`` name would hang or exhaust memory), it
loads with ``weights_only=True`` and an explicit allowlist (a malicious pickle cannot run code), and
every tensor has the running network's key, shape and kind of dtype, is dense, and is finite.

Why errors have a *kind*: a file of another network (``mismatch``) is fatal when the user named that
file; a corrupt file (``bad``) is skipped until it changes; a ``transient`` failure (permission denied,
a dead NFS server, a loader that died) says nothing about the file and is retried with backoff.
"""

import errno
import io
import os
import pickle
import re
import stat
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from rlg_hotreload.reload.source import FileVersion

COMPILE_PREFIX = "_orig_mod."
BAD, MISMATCH, TRANSIENT = "bad", "mismatch", "transient"
DEFAULT_MAX_MB = 2048
#: errno values that say something about the file itself; every other OSError may pass (retried)
_PERMANENT_ERRNOS = {errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ENODEV, errno.ENAMETOOLONG}


class CheckpointError(Exception):
    """A file that is not (yet) a usable checkpoint; the message says why in one line.

    ``kind`` is ``bad`` (refused until the file changes), ``mismatch`` (another network) or
    ``transient`` (retried: the failure says nothing about the file).
    """

    def __init__(self, message: str, kind: str = BAD) -> None:
        super().__init__(message)
        self.kind = kind


def one_line(e: BaseException) -> str:
    """An exception as one short line for a log (``OSError``s as their strerror and file name)."""
    text = (str(e).strip().splitlines() or [""])[0]
    if isinstance(e, OSError) and e.strerror:
        text = "%s%s" % (e.strerror, ": %s" % e.filename if e.filename else "")
    return text or type(e).__name__


def os_error(action: str, e: OSError) -> CheckpointError:
    kind = BAD if e.errno in _PERMANENT_ERRNOS else TRANSIENT
    return CheckpointError("%s (%s)" % (action, e.strerror or type(e).__name__), kind)


def _numpy_allowlist() -> List[Any]:
    """Globals an rl-games checkpoint legitimately contains besides tensors.

    ``last_mean_rewards`` is a numpy scalar (pickled via ``multiarray.scalar`` + a dtype); numpy 2
    moved ``numpy.core`` to ``numpy._core`` and pickles dtypes as ``numpy.dtypes.*DType``.
    """
    allowed: List[Any] = [np.dtype, np.ndarray]
    core = getattr(np, "_core", None) or np.core
    allowed.append(core.multiarray.scalar)
    allowed.append(core.multiarray._reconstruct)
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        for name in dir(dtypes):
            if name.endswith("DType"):
                allowed.append(getattr(dtypes, name))
    return allowed


ALLOWLIST = _numpy_allowlist()


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):  # fmt: skip
        if test(mode):
            return name
    return "not a plain file"


def open_regular(path: str, max_bytes: int, expect: Optional[FileVersion] = None) -> Tuple[int, os.stat_result]:
    """An open descriptor (the caller closes it) and its ``fstat`` if ``path`` is a regular file of at
    most ``max_bytes``; else CheckpointError.

    Opened with ``O_NONBLOCK`` so a FIFO cannot block the open, then checked with ``fstat`` before a
    single byte is read. ``expect``: the version that was judged stable; any difference is transient.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise os_error("cannot open", e) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CheckpointError("not a regular file (%s)" % _file_kind(st.st_mode))
        if st.st_size > max_bytes:
            raise CheckpointError("%.0f MB is more than maxCheckpointMB=%d" % (st.st_size / 2**20, max_bytes // 2**20))
        if expect is not None and (st.st_size, st.st_mtime_ns, st.st_ino) != expect[1:4]:
            raise CheckpointError("changed while being read", TRANSIENT)
    except OSError as e:
        os.close(fd)
        raise os_error("cannot read", e) from e
    except CheckpointError:
        os.close(fd)
        raise
    return fd, st


def read_regular_file(path: str, max_bytes: int, expect: Optional[FileVersion] = None) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes`` (see :func:`open_regular`)."""
    fd, st = open_regular(path, max_bytes, expect)
    with os.fdopen(fd, "rb", buffering=0) as f:
        try:
            chunks = []  # one read() returns all of a regular file, except on some network filesystems
            left = st.st_size + 1  # one byte more than expected: a file that grew is noticed
            while left > 0:
                chunk = f.read(left)
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            after = os.fstat(fd)
        except OSError as e:
            raise os_error("cannot read", e) from e
    if len(data) != st.st_size or (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
        raise CheckpointError("changed while being read", TRANSIENT)
    return data


def load_weights_only(data: Union[bytes, str], need_model: bool = True) -> Any:
    """``torch.load(weights_only=True)`` with the explicit numpy allowlist, on CPU.

    ``data``: the file's bytes, or a path to memory-map (``mmap=True``: tensors stay on disk until used).
    """
    buf = io.BytesIO(data) if isinstance(data, bytes) else data
    kwargs: Dict[str, Any] = {} if isinstance(data, bytes) else {"mmap": True}
    serialization = torch.serialization
    try:
        if hasattr(serialization, "safe_globals"):  # torch >= 2.5
            with serialization.safe_globals(ALLOWLIST):
                obj = torch.load(buf, map_location="cpu", weights_only=True, **kwargs)
        else:  # torch 1.13 - 2.4: no allowlist API; numpy scalars are refused, tensors load
            obj = torch.load(buf, map_location="cpu", weights_only=True, **kwargs)
    except MemoryError as e:
        raise CheckpointError("cannot load (out of memory)", TRANSIENT) from e
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not a usable checkpoint"
        if isinstance(e, pickle.UnpicklingError) and "Weights only load failed" in str(e):
            # torch's message is a paragraph on how to bypass the safety; name the cause instead
            culprit = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
            msg = "refused by the weights-only unpickler: %s" % (
                "it references %s, which is not on the allowlist" % culprit.group(1)
                if culprit
                else "corrupt, or it holds objects outside the allowlist"
            )
            raise CheckpointError("cannot load (%s)" % msg) from e
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError("cannot load (%s: %s)" % (type(e).__name__, msg[:200])) from e
    if need_model and (not isinstance(obj, dict) or "model" not in obj):
        raise CheckpointError("not an rl-games checkpoint (no 'model' entry)")
    return obj


def model_state(checkpoint: Dict[str, Any]) -> Dict[str, Any]:
    """The model's state dict from a checkpoint, with torch.compile's ``_orig_mod.`` stripped.

    Old rl-games checkpoints keep the input normaliser under a separate ``running_mean_std`` key.
    """
    model = checkpoint["model"]
    if not isinstance(model, dict) or not all(isinstance(k, str) for k in model):
        raise CheckpointError("not an rl-games checkpoint ('model' is a %s, not a dict of tensors)" % type(model).__name__)
    state = {}
    for k, v in model.items():
        state[k[len(COMPILE_PREFIX):] if k.startswith(COMPILE_PREFIX) else k] = v
    rms = checkpoint.get("running_mean_std")
    if isinstance(rms, dict):
        for k, v in rms.items():
            state.setdefault("running_mean_std.%s" % k, v)
    return state


def _same_family(a: torch.dtype, b: torch.dtype) -> bool:
    """float16/32/64 may stand for each other (cast on load); an int or bool for a float may not."""
    def family(d: torch.dtype) -> str:
        if d.is_complex:
            return "complex"
        if d.is_floating_point:
            return "float"
        return "bool" if d == torch.bool else "int"

    return family(a) == family(b)


def check_compatible(state: Dict[str, Any], reference: Dict[str, torch.Tensor]) -> None:
    """Raise CheckpointError unless ``state`` fits the reference: keys, shapes, dtypes, layout, finite."""
    missing = sorted(set(reference) - set(state))
    extra = sorted(set(state) - set(reference))
    if missing or extra:
        raise CheckpointError(
            "network does not match: missing %s, unexpected %s" % (missing[:3] or "none", extra[:3] or "none"),
            MISMATCH,
        )
    for k, ref in reference.items():
        v = state[k]
        if not isinstance(v, torch.Tensor):
            raise CheckpointError("network does not match: %s is a %s, not a tensor" % (k, type(v).__name__), MISMATCH)
        if v.layout != torch.strided or v.is_quantized:
            raise CheckpointError("%s is a %s tensor; only dense tensors are accepted" % (k, str(v.layout).replace("torch.", "")))
        if tuple(v.shape) != tuple(ref.shape):
            raise CheckpointError(
                "network does not match: %s has shape %s, the player's has %s" % (k, tuple(v.shape), tuple(ref.shape)),
                MISMATCH,
            )
        if not _same_family(v.dtype, ref.dtype):
            raise CheckpointError("%s has dtype %s, the player's is %s" % (k, v.dtype, ref.dtype))
        if (v.is_floating_point() or v.is_complex()) and v.numel() and not all_finite(v):
            raise CheckpointError("%s holds NaN or Inf values (a diverged run?)" % k)


def all_finite(v: torch.Tensor) -> bool:
    """No NaN or Inf in ``v``. A finite sum proves it (NaN and Inf propagate through a sum) in one read
    pass; only a non-finite sum (or an overflow) needs the element-wise test, 70x slower (measured)."""
    return bool(torch.isfinite(v.sum())) or bool(torch.isfinite(v).all())


@dataclass
class LoadedCheckpoint:
    """A validated checkpoint, ready to swap in (tensors already on the player's device)."""

    version: FileVersion
    state: Dict[str, torch.Tensor]
    epoch: Optional[int]
    frame: Optional[int]
    best_reward: Optional[float]
    env_state: Any
    load_ms: float
    #: ``time.monotonic()`` stamps of the way here (event, check, request, child_*, reply, mapped, put):
    #: where a reload's latency goes, for benchmarks/reload_latency.py; empty where a loader keeps none
    phases: Dict[str, float] = field(default_factory=dict)


def _scalar(x: Any, cast: Callable[[Any], Any]) -> Any:
    try:
        return cast(x) if x is not None else None
    except (TypeError, ValueError, OverflowError):
        return None


def load_checkpoint_file(
    version: FileVersion, reference: Dict[str, torch.Tensor], device: Any, max_bytes: int = DEFAULT_MAX_MB << 20
) -> LoadedCheckpoint:
    """Read, unpickle (weights only) and validate one file version; raise CheckpointError if unusable."""
    t0 = time.perf_counter()
    data = read_regular_file(version.path, max_bytes, version)
    ckpt = load_weights_only(data)
    del data
    return validated(version, ckpt, reference, device, t0)


def validated(version: FileVersion, ckpt: Any, reference: Dict[str, torch.Tensor], device: Any,
              t0: float) -> LoadedCheckpoint:  # fmt: skip
    """The swappable checkpoint from an unpickled file (loading began at ``t0``); CheckpointError if unusable."""
    state = model_state(ckpt)
    check_compatible(state, reference)
    state = {k: v.to(device=device, dtype=reference[k].dtype) for k, v in state.items()}
    best = _scalar(ckpt.get("last_mean_rewards"), float)
    return LoadedCheckpoint(
        version=version,
        state=state,
        epoch=_scalar(ckpt.get("epoch"), int),
        frame=_scalar(ckpt.get("frame"), int),
        best_reward=best if best is not None and best > -1e8 else None,
        env_state=ckpt.get("env_state"),
        load_ms=(time.perf_counter() - t0) * 1000.0,
    )
