"""Test helpers: run the real CLI in a subprocess and wait on its log lines (events, not sleeps)."""

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("MUJOCO_GL", "egl")
    env["OMP_NUM_THREADS"] = "1"
    return env


class Proc:
    """A CLI subprocess whose merged stdout/stderr is collected line by line by a reader thread."""

    def __init__(
        self,
        args: Sequence[str],
        cwd: str,
        module: str = "rlg_hotreload.run",
        new_session: bool = False,
        script: Optional[str] = None,
    ) -> None:
        """Runs ``python -m module args``, or ``python script args`` when ``script`` (a file) is given."""
        self.args = list(args)
        self.p = subprocess.Popen(
            [sys.executable, *([script] if script else ["-m", module]), *args],
            cwd=cwd,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=new_session,
        )
        self.lines: List[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def count(self, pattern: str) -> int:
        rx = re.compile(pattern)
        with self._cond:
            return sum(1 for line in self.lines if rx.search(line))

    def wait_for(self, pattern: str, timeout: float, count: int = 1, start: int = 0) -> re.Match:
        """Block until the ``count``-th line (from line index ``start``) matching ``pattern`` appears."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [m for m in (rx.search(line) for line in self.lines[start:]) if m]
                if len(hits) >= count:
                    return hits[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not self._reader.is_alive()):
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(
                        "timed out waiting for %r x%d (exit=%s); output tail:\n%s"
                        % (pattern, count, self.p.poll(), tail)
                    )
                self._cond.wait(min(left, 0.5))

    def interrupt(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> float:
        """Send ``sig``; return seconds until the process exited."""
        t0 = time.monotonic()
        self.p.send_signal(sig)
        self.p.wait(timeout)
        self._reader.join(5)
        return time.monotonic() - t0

    def wait(self, timeout: float) -> int:
        rc = self.p.wait(timeout)
        self._reader.join(5)
        return rc

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)


def run_cli(args: Sequence[str], cwd: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlg_hotreload.run", *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def main_in_process(args: Sequence[str], cwd: str, monkeypatch: Any, capsys: Any) -> Tuple[int, List[str]]:
    """``rlg_hotreload.run.main(args)`` in this process, from ``cwd``, without a display: (exit code,
    stderr lines). The CLI's own code path, without ~4 s of interpreter and torch start-up per case."""
    from rlg_hotreload import run

    monkeypatch.chdir(cwd)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code = run.main(list(args))
    return code, capsys.readouterr().err.strip().splitlines()


def cli_in_process(args: Sequence[str], cwd: Any, monkeypatch: Any, capsys: Any) -> subprocess.CompletedProcess:
    """``main_in_process`` shaped as ``run_cli``'s result (returncode, stdout, stderr), for tests of what the
    CLI answers (exit code, the one error line) rather than of the process itself (signals, process
    groups). An exception escaping ``main`` fails the test: stricter than looking for "Traceback"."""
    from rlg_hotreload import run

    capsys.readouterr()  # what the test printed before is not the CLI's output
    monkeypatch.chdir(str(cwd))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    root = logging.getLogger()
    level, to_stdout = root.level, logging.StreamHandler(sys.stdout)  # the CLI's log lines, as the CLI
    to_stdout.setFormatter(logging.Formatter("[rlg_hotreload] %(message)s"))  # writes them (main's
    root.addHandler(to_stdout)  # basicConfig does nothing where pytest has put handlers on the root)
    root.setLevel(logging.INFO)
    try:
        code = run.main(list(args))
    finally:
        root.removeHandler(to_stdout)
        root.setLevel(level)
    out = capsys.readouterr()
    return subprocess.CompletedProcess(["rlg_hotreload.run", *args], code, out.out, out.err)


def newest_line(lines: List[str], pattern: str) -> Optional[re.Match]:
    rx = re.compile(pattern)
    for line in reversed(lines):
        m = rx.search(line)
        if m:
            return m
    return None


def free_port() -> int:
    """A loopback port free right now (only a hint: if taken meanwhile, the streamer moves on and logs it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
