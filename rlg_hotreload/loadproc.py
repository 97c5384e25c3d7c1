"""Checkpoint loading in a child process, so a big load never stalls the player.

Why a process: reading and unpickling a 50 MB checkpoint on a thread holds the GIL in long stretches
(the weights-only unpickler is Python code; storage reads hold the GIL), and every torch op of the
player's forward pass must re-acquire it: measured, a 0.4 ms step grew to 14-21 ms during such a load.
In a child process the load costs the player nothing. A file that crashes torch's reader takes down
only the child, which is restarted; the player keeps playing.

Why ``python -m`` and not ``multiprocessing``: spawn re-imports the user's main script in the child
(a training script without an ``if __name__ == "__main__"`` guard would start training again), and
fork is unsafe in a process with CUDA and threads. The child gets JSON requests on stdin, validates
with the same code as the in-process path, and writes the model tensors as one raw blob to shared
memory (``/dev/shm``); the parent maps it without copying (``torch.frombuffer``) and unlinks it.
"""

import io
import json
import mmap
import os
import select
import subprocess
import sys
import tempfile
import threading
from typing import Any, Dict, List, Optional

import torch

from rlg_hotreload.checkpoints import FileVersion
from rlg_hotreload.loader import (
    CheckpointError,
    LoadedCheckpoint,
    LoaderUnavailable,
    load_checkpoint_file,
    load_weights_only,
)

ALIGN = 64


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name.replace("torch.", ""))


def _blob_dir() -> str:
    return (
        "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    )


def _write_blob(loaded: LoadedCheckpoint) -> Dict[str, Any]:
    """Child: tensors (and a small torch.save of env_state) into one file; return its table."""
    fd, path = tempfile.mkstemp(prefix="rlg-hotreload-", suffix=".bin", dir=_blob_dir())
    table: List[List[Any]] = []
    with os.fdopen(fd, "wb") as f:
        for key, t in loaded.state.items():
            t = t.contiguous()
            pad = (-f.tell()) % ALIGN
            f.write(b"\0" * pad)
            offset = f.tell()
            raw = t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
            f.write(raw)
            table.append([key, str(t.dtype), list(t.shape), offset, t.numel()])
        env_offset, env_len = f.tell(), 0
        if loaded.env_state is not None:  # usually None: then the parent unpickles nothing
            env = io.BytesIO()
            torch.save(loaded.env_state, env)
            env_len = f.write(env.getvalue())
    return {"blob": path, "tensors": table, "env": [env_offset, env_len]}


def serve() -> None:
    """Child main loop: first line = reference spec; then one FileVersion per line, one reply each."""
    torch.set_num_threads(1)
    if hasattr(os, "nice"):
        os.nice(10)  # background work: on a busy machine the player's (OpenMP) threads go first
    spec = json.loads(sys.stdin.readline())
    ref = {k: torch.empty(s, dtype=_dtype(d), device="meta") for k, (d, s) in spec.items()}
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            loaded = load_checkpoint_file(FileVersion(*json.loads(line)), ref, "cpu")
            reply = _write_blob(loaded)
            reply.update(ok=True, epoch=loaded.epoch, frame=loaded.frame, best_reward=loaded.best_reward,
                         load_ms=loaded.load_ms)  # fmt: skip
        except CheckpointError as e:
            reply = {"ok": False, "error": str(e)}
        out.write(json.dumps(reply) + "\n")
        out.flush()


class ProcessLoader:
    """Parent side: ``load(version)`` asks the child and waits (on the watcher thread, never the player's)."""

    def __init__(self, reference: Dict[str, torch.Tensor], timeout: float = 120.0) -> None:
        self.spec = {k: [str(v.dtype), list(v.shape)] for k, v in reference.items()}
        self.devices = {k: v.device for k, v in reference.items()}
        self.timeout = timeout
        self._proc: Optional[subprocess.Popen] = None
        self._lock = threading.Lock()

    def _readline(self) -> Dict[str, Any]:
        """One reply line, bounded by ``timeout`` (select on POSIX; a reader thread elsewhere)."""
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        box: List[bytes] = []
        if os.name == "posix":
            if select.select([stdout], [], [], self.timeout)[0]:
                box.append(stdout.readline())  # the child writes whole lines, flushed
        else:
            reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
            reader.start()
            reader.join(self.timeout)
        if not box:
            self._kill()
            raise CheckpointError("loader process gave no answer within %.0f s; restarted" % self.timeout)
        if not box[0]:
            code = self._proc.poll()
            self._kill()
            raise CheckpointError("loader process died (exit code %s); restarted" % code)
        return json.loads(box[0])

    def _ensure(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            env = dict(os.environ, OMP_NUM_THREADS="1")
            here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # importable as in the parent
            env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "rlg_hotreload.loadproc"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
            )  # fmt: skip
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write((json.dumps(self.spec) + "\n").encode())
                self._proc.stdin.flush()
                ready = self._readline().get("ready")
            except (CheckpointError, OSError, ValueError) as e:
                raise LoaderUnavailable("loader process did not start (%s)" % e) from e
            if not ready:
                self._kill()
                raise LoaderUnavailable("loader process did not start")
        return self._proc

    def load(self, version: FileVersion) -> LoadedCheckpoint:
        with self._lock:
            proc = self._ensure()
            assert proc.stdin is not None
            try:
                proc.stdin.write((json.dumps(list(version)) + "\n").encode())
                proc.stdin.flush()
            except (BrokenPipeError, OSError) as e:
                self._kill()
                raise CheckpointError("loader process died (%s); restarted" % e) from e
            reply = self._readline()
        if not reply["ok"]:
            raise CheckpointError(reply["error"])
        return self._map(version, reply)

    def _map(self, version: FileVersion, reply: Dict[str, Any]) -> LoadedCheckpoint:
        """Zero-copy view of the child's blob; the file is unlinked at once (the mapping keeps it)."""
        path = reply["blob"]
        try:
            with open(path, "r+b") as f:
                size = os.fstat(f.fileno()).st_size
                mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) if size else None
        finally:
            os.unlink(path)
        state: Dict[str, torch.Tensor] = {}
        for key, dtype, shape, offset, numel in reply["tensors"]:
            dt = _dtype(dtype)
            t = (
                torch.frombuffer(mm, dtype=dt, count=numel, offset=offset)
                if numel
                else torch.empty(0, dtype=dt)
            )
            t = t.view(shape)
            if self.devices[key].type == "cpu":
                t.sum()  # fault the pages in here, not in the player's first forward pass (measured: +45 ms)
            else:
                t = t.to(self.devices[key])
            state[key] = t
        env_off, env_len = reply["env"]
        env_state = (
            load_weights_only(bytes(mm[env_off : env_off + env_len]), need_model=False) if env_len else None
        )
        return LoadedCheckpoint(
            version=version, state=state, epoch=reply["epoch"], frame=reply["frame"],
            best_reward=reply["best_reward"], env_state=env_state, load_ms=reply["load_ms"], noticed_at=0.0,
        )  # fmt: skip

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None

    def close(self, timeout: float = 2.0) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        # Idle between requests and holding nothing worth saving: kill it rather than wait ~0.4 s for
        # a graceful interpreter exit (which would delay the player's Ctrl+C exit).
        proc.kill()
        proc.wait(timeout)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


if __name__ == "__main__":
    serve()
