"""Safe checkpoint loading and the background watcher that feeds the player.

Why in the background: reading and unpickling a checkpoint takes milliseconds to seconds; the player
must keep stepping meanwhile. The watcher thread does every bit of I/O (listing, stat, read,
``torch.load``, validation) and leaves a fully prepared state dict in a one-slot mailbox. The player's
hot path only looks at that slot (no I/O at all) and swaps between two steps.

Why so careful: rl-games writes checkpoints with a plain ``torch.save`` to the final path, rsync writes
a temp file and renames it, sync tools delete and recreate. A file is accepted only when its
size/mtime/inode are the same across two looks, it loads with ``weights_only=True`` (so a malicious
pickle cannot run code), and its keys and shapes match the running network.
"""

import io
import logging
import pickle
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Set

import numpy as np
import torch

from rlg_hotreload.checkpoints import CheckpointSource, FileVersion, stat_version

log = logging.getLogger("rlg_hotreload")

COMPILE_PREFIX = "_orig_mod."


class CheckpointError(Exception):
    """A file that is not (yet) a usable checkpoint; the message says why in one line."""


class LoaderUnavailable(Exception):
    """The loader child process cannot be started at all (the watcher then loads on its thread)."""


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


def load_weights_only(data: bytes, need_model: bool = True) -> Any:
    """``torch.load(weights_only=True)`` with the explicit numpy allowlist, on CPU."""
    buf = io.BytesIO(data)
    serialization = torch.serialization
    try:
        if hasattr(serialization, "safe_globals"):  # torch >= 2.5
            with serialization.safe_globals(ALLOWLIST):
                obj = torch.load(buf, map_location="cpu", weights_only=True)
        else:  # torch 1.13 - 2.4: no allowlist API; numpy scalars are refused, tensors load
            obj = torch.load(buf, map_location="cpu", weights_only=True)
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


def model_state(checkpoint: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """The model's state dict from a checkpoint, with torch.compile's ``_orig_mod.`` stripped.

    Old rl-games checkpoints keep the input normaliser under a separate ``running_mean_std`` key.
    """
    state = {}
    for k, v in checkpoint["model"].items():
        state[k.replace(COMPILE_PREFIX, "", 1) if k.startswith(COMPILE_PREFIX) else k] = v
    rms = checkpoint.get("running_mean_std")
    if isinstance(rms, dict):
        for k, v in rms.items():
            state.setdefault("running_mean_std." + k, v)
    return state


def check_compatible(state: Dict[str, Any], reference: Dict[str, torch.Tensor]) -> None:
    """Raise CheckpointError unless ``state`` has exactly the reference's keys and shapes."""
    missing = sorted(set(reference) - set(state))
    extra = sorted(set(state) - set(reference))
    if missing or extra:
        raise CheckpointError(
            "network does not match: missing %s, unexpected %s" % (missing[:3] or "none", extra[:3] or "none")
        )
    for k, ref in reference.items():
        v = state[k]
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != tuple(ref.shape):
            shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise CheckpointError(
                "network does not match: %s has shape %s, the player's has %s" % (k, shape, tuple(ref.shape))
            )


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
    noticed_at: float  # time.monotonic() when this version was first seen


def _scalar(x: Any, cast: Callable[[Any], Any]) -> Any:
    try:
        return cast(x) if x is not None else None
    except (TypeError, ValueError):
        return None


def load_checkpoint_file(
    version: FileVersion, reference: Dict[str, torch.Tensor], device: Any
) -> LoadedCheckpoint:
    """Read, unpickle (weights only) and validate one file version; raise CheckpointError if unusable."""
    t0 = time.perf_counter()
    try:
        with open(version.path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CheckpointError("cannot read (%s)" % e.strerror) from e
    if stat_version(version.path) != version:
        raise CheckpointError("changed while being read")
    ckpt = load_weights_only(data)
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
        noticed_at=time.monotonic(),
    )


class CheckpointWatcher:
    """Background thread: every ``interval`` s, find the newest valid checkpoint and prepare it.

    ``interval == 0`` means load once: the thread ends after the first accepted checkpoint.
    Rejected file versions are remembered (and warned about once); a changed file is a new version
    and is tried again.
    """

    def __init__(
        self,
        source: CheckpointSource,
        reference: Dict[str, torch.Tensor],
        interval: float = 30.0,
        settle: float = 0.1,
        wait_log_every: float = 30.0,
        isolate: bool = False,
    ) -> None:
        self.source = source
        self.reference = {k: v.detach() for k, v in reference.items()}
        self.isolate = isolate  # load in a child process (see loadproc.py) once the player runs
        self._process_loader: Optional[Any] = None
        self.interval = interval
        self.settle = settle
        self.wait_log_every = wait_log_every
        self.current: Optional[FileVersion] = None  # the version last handed to the player
        self.rejected: Set[FileVersion] = set()
        self._first_seen: Dict[FileVersion, float] = {}
        self._pending: Optional[LoadedCheckpoint] = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._last_wait_log = 0.0

    # -- player side (no I/O) --------------------------------------------------------------------
    def take(self) -> Optional[LoadedCheckpoint]:
        """The newest prepared checkpoint, or None. Cheap: the player calls it between steps."""
        if self._pending is None:
            return None
        with self._lock:
            item, self._pending = self._pending, None
            self._ready.clear()
        return item

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` s until a checkpoint is ready (used before the first step)."""
        return self._ready.wait(timeout)

    # -- thread ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="rlg-hotreload-watcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._process_loader is not None:
            self._process_loader.close(timeout)

    def _load(self, version: FileVersion) -> LoadedCheckpoint:
        """In the child process when isolating and the thread runs; in-line otherwise."""
        if self.isolate and threading.current_thread() is self._thread:
            loader = self._loader_process()
            if loader is not None:
                return loader.load(version)
        return load_checkpoint_file(version, self.reference, self._device())

    def _loop(self) -> None:
        if self.isolate and self.current is not None and self.interval > 0:
            self._loader_process()  # start the child now, not at the first reload
        while not self._stop.is_set():
            accepted = self.poll()
            if accepted and self.interval <= 0:
                return
            waiting = self.current is None
            self._stop.wait(
                min(self.interval, 1.0) if waiting and self.interval > 0 else self.interval or 1.0
            )

    def _loader_process(self) -> Any:
        """The running child-process loader, or None (then loads run on this thread from now on)."""
        if self._process_loader is None:
            from rlg_hotreload.loadproc import ProcessLoader

            self._process_loader = ProcessLoader(self.reference)
        try:
            self._process_loader._ensure()
        except LoaderUnavailable as e:
            log.warning("Loading on a thread instead of a child process: %s", e)
            self.isolate = False
            return None
        return self._process_loader

    def poll(self) -> bool:
        """One check: returns True if a new checkpoint was prepared for the player."""
        candidates = self.source.candidates()
        # forget versions that are gone (rewritten, renamed, deleted): a days-long run must not grow these
        live = set(candidates)
        self.rejected &= live
        for v in [v for v in self._first_seen if v not in live]:
            del self._first_seen[v]
        if not candidates and self.current is None:
            now = time.monotonic()
            if now - self._last_wait_log >= self.wait_log_every:
                self._last_wait_log = now
                log.info("Waiting for a checkpoint in %s ...", self.source.describe())
            return False
        for version in candidates:
            if version == self.current or self._older_than_current(version):
                return False  # nothing newer than what is playing: never roll back
            if version in self.rejected:
                continue
            self._first_seen.setdefault(version, time.monotonic())
            if self._stop.wait(self.settle):
                return False
            if stat_version(version.path) != version:
                return False  # still being written: look again at the next check
            try:
                loaded = self._load(version)
            except CheckpointError as e:
                if stat_version(version.path) == version:
                    self.rejected.add(version)
                    log.warning("Skipping %s: %s; still playing the current weights", version.path, e)
                continue
            loaded.noticed_at = self._first_seen.pop(version, loaded.noticed_at)
            with self._lock:
                self._pending = loaded
                self.current = version
                self._ready.set()
            return True
        return False

    def _older_than_current(self, version: FileVersion) -> bool:
        cur = self.current
        return cur is not None and version.path != cur.path and version.mtime_ns < cur.mtime_ns

    def _device(self) -> Any:
        first = next(iter(self.reference.values()), None)
        return first.device if first is not None else "cpu"
