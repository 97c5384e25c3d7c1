"""What every helper process of the player does first (die with its parent, step aside), and how its parent reaps it.

Why one module: the checkpoint loader (:mod:`rlg_hotreload.reload.child`) and the frame process
(:mod:`rlg_hotreload.stream.frameproc_child`) follow the same rules, and the frame process must not
import torch (this module imports nothing heavy).

Why the autogroup: both children start in a session of their own (``start_new_session``), so that
Ctrl+C in a terminal, which reaches the whole foreground process group, leaves them to their parent.
With Linux's autogroup scheduling (``/proc/sys/kernel/sched_autogroup_enabled``, on by default on
desktop and many server kernels) a new session is a new scheduling group, and CPU time is shared
fairly between *groups*: a child's ``nice`` then counts only inside its own group, and a frame process
rendering with software EGL took as much CPU as a whole training run beside it (the demo on 2 cores
trained ~2.5x slower). Writing the nice value to ``/proc/self/autogroup`` gives the group the weight
that the nice value gives a process.
"""

import os
import signal
import subprocess
import sys
from typing import Optional

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: Optional[int]) -> None:
    """Linux: SIGKILL this process when the parent (thread) goes; exit now if it is gone already."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl: EOF on the parent's pipe or socket still ends the child when the parent dies
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(0)


def step_aside(nice: int = 10) -> None:
    """Lower this process's priority by ``nice``, and its autogroup's to the same level where there is one."""
    if not hasattr(os, "nice"):
        return
    level = os.nice(nice)
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(level))
    except OSError:
        pass  # no autogroup (disabled, not Linux, or not allowed): the process's nice is all there is


def reap(proc: "subprocess.Popen[bytes]", timeout: float, kill: bool = False) -> None:
    """Parent: wait for a helper process to end (after ``timeout`` s, or at once with ``kill``, SIGKILL it).

    A process that even SIGKILL does not end within ``timeout`` (uninterruptible sleep) is left to the
    OS, which reaps it when the parent exits: the parent never blocks on it for longer.
    """
    if kill and proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout)
        return
    except subprocess.TimeoutExpired:
        if kill:
            return
    proc.kill()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass  # unkillable for now (D state); the OS reaps it when the parent exits
