"""``ProcessLoader``: the parent side of the loader child (see :mod:`rlg_hotreload.reload.child`).

Why these rules: the watcher thread waits on the child, the player's Ctrl+C must never wait on it.
``load`` runs without a lock over the pipe I/O; ``close`` (any thread) kills the child at once, which
ends a pending ``load`` with EOF within milliseconds. Every wait on the child is bounded by
``timeout``; a child that died or hung is reported as a *transient* error (the file is retried) and a
new child is started at the next load. The child runs in its own session, so a terminal's Ctrl+C
(sent to the foreground process group) never reaches it.

Why the loader keeps the blob mappings: unmapping one frees its pages, which costs ~10 ms per 17 MB here
(60 ms for 64 MB); left to the last tensor, that happens on the player's thread the moment its previous
weights are dropped, right after a swap. The loader unmaps the blobs no tensor uses any more on the
watcher thread (munmap releases the GIL) once a load was handed to the player (``tidy``), not before the
next request, where it added ~3 ms to every reload's latency; at most one unused blob stays mapped.
Most reloads need no new blob at all: ten are kept and reused (:mod:`rlg_hotreload.reload.slots`).
"""

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional

from rlg_hotreload.childproc import reap
from rlg_hotreload.reload.blob import blob_layout, map_blob
from rlg_hotreload.reload.checkpoint import TRANSIENT, CheckpointError, LoadedCheckpoint, load_weights_only
from rlg_hotreload.reload.gpu_copy import Staging
from rlg_hotreload.reload.loaders import Loader, LoaderUnavailable
from rlg_hotreload.reload.slots import SLOTS, SlotMaps
from rlg_hotreload.reload.source import FileVersion

CHILD_MODULE = "rlg_hotreload.reload.child"
UNUSED_REFS = 3  # sys.getrefcount of a mapping held only by a list being scanned (list, loop name, argument)


def describe_exit(code: Optional[int]) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            return "killed by %s" % signal.Signals(-code).name
        except ValueError:
            return "killed by signal %d" % -code
    return "exited with code %d" % code


class ProcessLoader(Loader):
    """Parent side: ``load(version)`` asks the child and waits (on the watcher thread, never the player's)."""

    name = "process"

    def __init__(self, *args: Any, slots: int = SLOTS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slots = slots  # hand-over blobs the child keeps for reuse (see rlg_hotreload.reload.slots)
        self.spec = {k: [str(v.dtype), list(v.shape)] for k, v in self.reference.items()}
        self.devices = {k: v.device for k, v in self.reference.items()}
        self.proc: Optional[subprocess.Popen] = None
        self.spawns = 0
        self._closed = False
        self._lock = threading.Lock()  # guards proc/closed only; never held across pipe I/O
        self._maps: List[Any] = []  # the one-off blobs mapped so far that may still hold tensors (see unmap_unused)
        self._slots = SlotMaps()  # the reused blobs of the current child (see rlg_hotreload.reload.slots)
        self.staging = Staging()  # pinned memory for copies to a GPU (see rlg_hotreload.reload.gpu_copy)
        self.warm: Dict[str, Any] = {}  # the child's warm-up load (see rlg_hotreload.reload.warm)

    @property
    def pid(self) -> Optional[int]:
        proc = self.proc
        return proc.pid if proc is not None else None

    def _readline(self, proc: "subprocess.Popen[bytes]", timeout: float) -> Dict[str, Any]:
        """One reply line within ``timeout`` s, or CheckpointError(transient) after killing the child."""
        stdout = proc.stdout
        assert stdout is not None
        box: List[bytes] = []
        if os.name == "posix":
            if select.select([stdout], [], [], timeout)[0]:
                box.append(stdout.readline())  # the child writes whole lines, flushed
        else:
            reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
            reader.start()
            reader.join(timeout)
        if not box or not box[0]:
            self._discard(proc)
            if self._closed:
                raise CheckpointError("loader stopped", TRANSIENT)
            if not box:
                raise CheckpointError("loader process gave no answer within %.0f s" % timeout, TRANSIENT)
            raise CheckpointError("loader process %s" % describe_exit(proc.returncode), TRANSIENT)
        return json.loads(box[0])

    def _discard(self, proc: "subprocess.Popen[bytes]") -> None:
        """Kill ``proc`` (if still running), reap it (bounded) and forget it."""
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            pass  # unkillable (D state on a dead NFS server): the OS reaps it later
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass  # a broken pipe has nothing left to flush
        with self._lock:
            if self.proc is proc:
                self.proc = None

    def start(self) -> None:
        nbytes = blob_layout(self.reference)[1]  # where the tensors end: the staging size
        for device in {d for d in self.devices.values() if d.type == "cuda"}:
            self.staging.reserve(device, nbytes)  # now, not during the first load (cudaHostAlloc)
        self._running()

    def _running(self) -> "subprocess.Popen[bytes]":
        """The live child, spawning one if needed; LoaderUnavailable if that is impossible."""
        with self._lock:
            if self._closed:
                raise CheckpointError("loader stopped", TRANSIENT)
            proc = self.proc
        if proc is not None and proc.poll() is None:
            return proc
        if proc is not None:
            self._discard(proc)
        env = dict(os.environ, OMP_NUM_THREADS="1")
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", CHILD_MODULE, str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True,
            )  # fmt: skip
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            raise LoaderUnavailable("cannot start the loader process (%s)" % e) from e
        with self._lock:
            closed = self._closed
            self.proc = proc
        self.spawns += 1
        if closed:
            self._discard(proc)
            raise CheckpointError("loader stopped", TRANSIENT)
        assert proc.stdin is not None
        try:
            proc.stdin.write((json.dumps({"tensors": self.spec, "max_bytes": self.max_bytes, "slots": self.slots}) + "\n").encode())
            proc.stdin.flush()
            answer = self._readline(proc, max(self.timeout, 60.0))
            ready = answer.get("ready")
            self.warm = {k: v for k, v in answer.items() if k.startswith("warm_")}
        except (OSError, ValueError) as e:
            self._discard(proc)
            raise LoaderUnavailable("the loader process did not start (%s)" % e) from e
        except CheckpointError as e:
            if self._closed:
                raise
            raise LoaderUnavailable("the loader process did not start (%s)" % e) from e
        if not ready:
            self._discard(proc)
            raise LoaderUnavailable("the loader process did not start")
        return proc

    def unmap_unused(self) -> int:
        """Unmap (here, on the calling thread) each blob that no tensor uses any more; returns how many."""
        maps, self._maps = self._maps, []
        keep = [m for m in maps if sys.getrefcount(m) > UNUSED_REFS]
        dropped = len(maps) - len(keep)
        self._maps = keep + self._maps  # + any mapped meanwhile (close() from another thread)
        del maps
        return dropped

    def tidy(self) -> None:
        self.unmap_unused()

    def load(self, version: FileVersion) -> LoadedCheckpoint:
        proc = self._running()
        assert proc.stdin is not None
        requested = time.monotonic()
        try:
            request = {"version": list(version), "free": self._slots.free(proc.pid)}
            proc.stdin.write((json.dumps(request) + "\n").encode())
            proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            self._discard(proc)
            raise CheckpointError("loader process %s" % describe_exit(proc.returncode), TRANSIENT) from None
        reply = self._readline(proc, self.timeout)
        phases = dict(reply.get("phases") or {}, request=requested, reply=time.monotonic())
        if not reply["ok"]:
            if reply.get("kind") == "nospace":
                raise LoaderUnavailable(reply["error"])
            raise CheckpointError(reply["error"], reply.get("kind", "bad"))
        t0 = time.perf_counter()
        state, env = map_blob(reply, proc.pid, self.devices, self._maps, self._slots, self.staging)
        env_state = load_weights_only(env, need_model=False) if env else None
        phases["mapped"] = time.monotonic()
        return LoadedCheckpoint(
            version=version, state=state, epoch=reply["epoch"], frame=reply["frame"],
            best_reward=reply["best_reward"], env_state=env_state,
            load_ms=reply["load_ms"] + (time.perf_counter() - t0) * 1000.0, phases=phases,
        )  # fmt: skip

    def close(self, timeout: float = 1.0) -> None:
        """Kill the child now (idle or mid-load: a pending ``load`` then fails at once); bounded."""
        with self._lock:
            self._closed = True
            proc = self.proc
        self._maps = []  # those still in use are unmapped with their last tensor
        self._slots.clear()
        if proc is None:
            return
        reap(proc, timeout, kill=True)

    def describe(self) -> Dict[str, Any]:
        return dict({"name": self.name, "pid": self.pid, "spawns": self.spawns}, **self.warm)
