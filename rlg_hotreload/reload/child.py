"""The loader child process: ``python -m rlg_hotreload.reload.child <parent pid>``, driven over pipes.

Why a process: reading and unpickling a 50 MB checkpoint on a thread holds the GIL in long stretches
(the weights-only unpickler is Python code), and every torch op of the player's forward pass must
re-acquire it: measured, a 0.4 ms step grew to 14-21 ms during such a load. In a child the load costs
the player nothing, and a file that crashes torch's reader takes down only the child.

Why ``python -m`` and not ``multiprocessing``: spawn re-imports the user's main script in the child (a
training script without an ``if __name__ == "__main__"`` guard would start training again), and fork is
unsafe in a process with CUDA and threads.

Why it ignores SIGINT and dies with its parent: Ctrl+C in a terminal signals the whole foreground process
group; the parent decides when the child ends (it kills it), so the child must print nothing (no
``KeyboardInterrupt`` traceback) and must never outlive the parent (``PR_SET_PDEATHSIG`` on Linux; EOF on
stdin everywhere).

Protocol: first line ``{"tensors": {name: [dtype, shape]}, "max_bytes": n, "slots": n}``, answered ``{"ready": true,
"warm_ms": ..., "warm_ok": ...}`` once a warm-up load is done (see :mod:`rlg_hotreload.reload.warm`);
then one JSON request per line, ``{"version": FileVersion, "free": [slots the parent no longer uses]}`` (see
:mod:`rlg_hotreload.reload.slots`), answered by one JSON line (see :mod:`rlg_hotreload.reload.blob`)
whose ``phases`` are ``time.monotonic()`` stamps (system-wide on Linux, so comparable with the parent's):
``child_start``, ``child_loaded`` (mapped, unpickled, validated), ``child_blob`` (copied into the blob).
"""

import json
import select
import signal
import sys
import time
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from rlg_hotreload.childproc import die_with_parent, step_aside

#: seconds without a request after which the child makes the next hand-over blob ahead: not while the
#: player maps the blob it was just given (that would compete with it for the CPU on a small machine)
IDLE_S = 0.2

if TYPE_CHECKING:
    from rlg_hotreload.reload.slots import ChildSlots


def _answer(
    line: str, ref: Dict[str, Any], max_bytes: int, slots: Optional["ChildSlots"] = None
) -> Tuple[Optional[int], Dict[str, Any]]:
    from rlg_hotreload.reload.blob import NoSpace, discard, write_blob
    from rlg_hotreload.reload.checkpoint import TRANSIENT, CheckpointError
    from rlg_hotreload.reload.mapped import mapped_checkpoint
    from rlg_hotreload.reload.source import FileVersion

    fd: Optional[int] = None
    reply: Dict[str, Any] = {}
    phases = {"child_start": time.monotonic()}
    request = json.loads(line)
    if not isinstance(request, dict):  # a bare version: the warm-up's request
        request = {"version": request}
    try:
        try:
            with mapped_checkpoint(FileVersion(*request["version"]), ref, max_bytes) as loaded:
                phases["child_loaded"] = time.monotonic()
                fd, reply = write_blob(loaded.state, loaded.env_state, slots, request.get("free", []))
                phases["child_blob"] = time.monotonic()
        except BaseException:
            if fd is not None:
                discard(fd, reply)  # the file changed while its tensors were copied: drop that blob
            raise
    except CheckpointError as e:
        return None, {"ok": False, "error": str(e), "kind": e.kind}
    except NoSpace as e:
        return None, {"ok": False, "error": e.strerror, "kind": "nospace"}
    except MemoryError:
        return None, {"ok": False, "error": "out of memory in the loader process", "kind": TRANSIENT}
    except OSError as e:
        return None, {"ok": False, "error": "loader process: %s" % (e.strerror or e), "kind": TRANSIENT}
    reply.update(ok=True, epoch=loaded.epoch, frame=loaded.frame, best_reward=loaded.best_reward,
                 load_ms=loaded.load_ms, phases=phases)  # fmt: skip
    return fd, reply


def serve(parent_pid: Optional[int] = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    import torch

    from rlg_hotreload.reload.blob import blob_layout, discard, dtype_from_name, prepare_slot, use_memfd
    from rlg_hotreload.reload.slots import ChildSlots
    from rlg_hotreload.reload.warm import warm_up

    torch.set_num_threads(1)
    step_aside(10)  # background work: on a busy machine the player's threads go first
    spec = json.loads(sys.stdin.readline() or "null")
    if not spec:
        return
    ref = {
        k: torch.empty(s, dtype=dtype_from_name(d), device="meta") for k, (d, s) in spec["tensors"].items()
    }
    max_bytes = int(spec["max_bytes"])
    try:
        warm = warm_up(_answer, ref, max_bytes)
    except OSError as e:  # no room for the warm-up file: the first real load is merely slower
        warm = {"warm_ok": False, "warm_error": e.strerror or str(e)}
    slots = ChildSlots(enabled=use_memfd(), count=int(spec.get("slots", 0)))  # blobs kept for reuse (see rlg_hotreload.reload.slots)
    size = blob_layout(ref)[1]  # a checkpoint's blob (without env state): its layout is the network's
    out = sys.stdout
    out.write(json.dumps(dict(warm, ready=True)) + "\n")
    out.flush()
    last: Tuple[Optional[int], Dict[str, Any]] = (None, {})
    while True:
        if slots.wants_more(size) and not select.select([sys.stdin], [], [], IDLE_S)[0]:
            prepare_slot(slots, size)  # idle (no request for a while): the next load's blob, made now
        line = sys.stdin.readline()
        if not line:
            break
        discard(*last)  # the parent asks again only after it has mapped the previous blob; slots stay
        last = (None, {})
        fd, reply = _answer(line, ref, max_bytes, slots)
        if fd is not None:
            last = (fd, reply)
        out.write(json.dumps(reply) + "\n")
        out.flush()
    discard(*last)


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else None)
