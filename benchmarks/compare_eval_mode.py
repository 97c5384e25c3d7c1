"""rl-games' own evaluation mode vs HotReloadPlayer on one scripted checkpoint scenario (issue 5, part 1).

One scenario of checkpoint updates in mixed styles is generated once (seeded) and replayed identically
against each player, each player in its own process (benchmarks/_eval_worker.py) so that a crash is
observed and recorded, not suffered:

- ``stock (watchdog 7)``: stock rl-games 1.6.5 evaluation mode (``config.player.evaluation: true``,
  ``dir_to_monitor``, ``update_checkpoint_freq``) with the installed watchdog;
- ``stock (watchdog 2.3.1)``: the same, with watchdog 2.3.1 put first on ``PYTHONPATH`` (only if
  ``pip install --target <dir> watchdog==2.3.1`` is available: ``--wd2 <dir>``);
- ``stock, watchdog 2.3.1 + TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``: the same, with the workaround torch's
  own error message offers a user whose checkpoints fail ``weights_only`` loading (unsafe: any pickle in
  the watched folder then runs code);
- ``HotReloadPlayer``: ``checkpoint=<run dir>``, ``reloadInterval=0.5``.

Update styles: ``inplace`` (rl-games' plain torch.save to the final path), ``inplace_slow`` (half,
0.3 s pause, rest), ``rsync`` (hidden ``.<name>.XXXXXX`` temp file, then rename), ``truncated`` (a
copy cut at 40 %), ``corrupt`` (a valid file whose first 1 KiB is random bytes). Valid updates carry a
unique epoch (1, 2, ...), invalid ones an epoch >= 10000, so a load names the file version it came from.

Measures per player (from its merged stdout/stderr, each line time-stamped on arrival by a reader
thread in this process; pipes are unbuffered): updates noticed, valid loads, bad loads, crashes,
latency p50/p95 from "valid file complete on disk" (writer's clock after close/rename) to "loaded"
(see METHOD below). A crash of the stock mode is a result, not a failure of this script.

Usage: python benchmarks/compare_eval_mode.py [--updates 60] [--wd2 /tmp/wd2] [--quick]
"""

import argparse
import io
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

import torch
from common import REPO, build_player, fake_training_checkpoint, print_table, write_result

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "Pendulum.pth"
INVALID_EPOCH0 = 10000
STOCK_FREQ = 200  # steps; see METHOD
NO_WO = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1"
WARMUP = 3.0  # s between "player ready" and the first update

METHOD = {
    "warmup": "the scenario starts %.0f s after the player is ready (stock: built, first checkpoint restored, "
    "observer running; ours: first checkpoint playing), so that start-up (our loader child process, about "
    "2-3 s on 2 cores) is not counted as reload latency" % WARMUP,
    "scenario": "seeded list of updates written into <run>/nn by this process; the same list and the same "
    "checkpoint bytes are replayed against each player in a fresh folder; gap between updates "
    "uniform 0.9-1.3 s; the writer stops early if the player process has died",
    "noticed": "an update is noticed when the player logs about it: HotReloadPlayer 'Loaded/Reloaded <path> "
    "(epoch E' (E names the version) or 'Skipping <path>'; stock 'Evaluation: loading new checkpoint "
    "<eval_checkpoints/name>'. A line is attributed to the latest update of that file name started "
    "before the line",
    "valid_load": "HotReloadPlayer: a (Re)loaded line whose epoch is a valid update's. Stock (prints no "
    "epoch): a '=> loading checkpoint' line with no error line before the next load attempt and no crash, "
    "attributed by order/time to the latest update of that name completed before it, that update being valid",
    "bad_load": "an invalid or partial version accepted as weights (epoch >= 10000, or stock attribution to "
    "an invalid update), or an exception while loading (stock 'likely corrupted' / 'failed to load' / "
    "'Exception during filesystem op' lines, or a crash inside the load)",
    "crash": "the player process exited on its own before the scenario ended; last traceback line recorded",
    "latency": "arrival time of the load line (HotReloadPlayer 'Reloaded ... (epoch E', stock "
    "'=> loading checkpoint') minus the writer's time.time() right after the valid file was complete "
    "(closed, or renamed for rsync)",
    "check_rate": "HotReloadPlayer polls every 0.5 s (reloadInterval=0.5). Stock checks at every step n of a "
    "game with n %% update_checkpoint_freq == 0; Pendulum games are 200 steps, so any freq >= 200 means "
    "one check per game; freq=%d: one check per 200 steps (stock plays ~2900 steps/s here: a check every ~0.07-0.1 s), "
    "i.e. at least as frequent as ours; stock notices files by watchdog events, not by polling" % STOCK_FREQ,
}


# -- the scenario ------------------------------------------------------------------------------------
def make_scenario(n: int, seed: int = 0) -> List[Dict[str, Any]]:
    rng = random.Random(seed)
    styles = ["inplace"] * 6 + ["inplace_slow"] * 4 + ["rsync"] * 8 + ["truncated"] * 6 + ["corrupt"] * 6
    ups: List[Dict[str, Any]] = []
    valid_epoch = 0
    for i in range(n):
        # begin with rl-games' own style, end on a valid file
        style = "inplace" if i == 0 else "rsync" if i == n - 1 else rng.choice(styles)
        valid = style in ("inplace", "inplace_slow", "rsync")
        if valid:
            valid_epoch += 1
        # in-place styles rewrite the followed file; others also create new files as training's last_* do
        new_file = style in ("rsync", "truncated", "corrupt") and rng.random() < 0.5
        name = "last_Pendulum_ep_%d.pth" % (i + 1) if new_file else NAME
        ups.append({
            "index": i + 1, "style": style, "valid": valid, "name": name,
            "epoch": valid_epoch if valid else INVALID_EPOCH0 + i + 1, "gap": rng.uniform(0.9, 1.3),
            "tmp": ".%s.%06x" % (name, rng.randrange(1 << 24)),
        })  # fmt: skip
    return ups


def scenario_bytes(ups: List[Dict[str, Any]], model: Any) -> Dict[int, bytes]:
    out = {}
    rng = random.Random(1)
    for u in ups + [{"index": 0, "epoch": 0, "style": "inplace"}]:
        ckpt = fake_training_checkpoint(model, u["epoch"])
        buf = io.BytesIO()
        torch.save(ckpt, buf)
        data = buf.getvalue()
        if u["style"] == "truncated":
            data = data[: int(len(data) * 0.4)]
        elif u["style"] == "corrupt":
            data = bytes(rng.getrandbits(8) for _ in range(1024)) + data[1024:]
        out[u["index"]] = data
    return out


def write_update(nn: str, u: Dict[str, Any], data: bytes) -> float:
    """Perform one update; return time.time() when the file is complete under its final name."""
    path = os.path.join(nn, u["name"])
    if u["style"] == "rsync":
        tmp = os.path.join(nn, u["tmp"])
        with open(tmp, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            time.sleep(0.1)  # rsync copies in chunks: the temp file is visible half-written
            f.write(data[len(data) // 2 :])
        os.replace(tmp, path)
    elif u["style"] == "inplace_slow":
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            time.sleep(0.3)  # the fault itself: a slow writer, a partial file visible meanwhile
            f.write(data[len(data) // 2 :])
    else:
        with open(path, "wb") as f:
            f.write(data)
    return time.time()


# -- one player process -----------------------------------------------------------------------------
class Worker:
    def __init__(
        self, kind: str, run_dir: str, extra_path: Optional[str] = None, extra_env: Optional[Dict] = None
    ) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **(extra_env or {}))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, REPO, env.get("PYTHONPATH")) if p)
        args = [sys.executable, os.path.join(HERE, "_eval_worker.py"), kind, run_dir, str(STOCK_FREQ)]
        self.p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: List[tuple] = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            with self.cond:
                self.lines.append((time.time(), line.rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> bool:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(rx.search(s) for _, s in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not self.reader.is_alive()):
                    return False
                self.cond.wait(min(left, 0.5))
        return True

    def stop(self) -> Optional[int]:
        """SIGTERM (HotReloadPlayer ends cleanly; stock has no handler); returns the rc it had before."""
        before = self.p.poll()
        if before is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        self.reader.join(5)
        return before


def last_error_line(lines: List[str]) -> Optional[str]:
    if not any(s.startswith("Traceback") for s in lines):
        return None
    for s in reversed(lines):
        if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b", s):
            return s[:300]
    return lines[-1][:300] if lines else None


def pct(xs: List[float], q: float) -> Optional[float]:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100.0 * (len(xs) - 1))))]


def play(
    label: str,
    kind: str,
    ups: List[Dict[str, Any]],
    blobs: Dict[int, bytes],
    wd: Optional[str],
    extra_env: Optional[Dict] = None,
) -> Dict:
    run_dir = tempfile.mkdtemp(prefix="rlg_cmp_")
    nn = os.path.join(run_dir, "nn")
    os.makedirs(nn)
    # the training run's first checkpoint exists before the monitor starts (stock: it also gets it as
    # `checkpoint`, as `runner.run(play=True, checkpoint=...)` would restore it)
    write_update(nn, {"style": "inplace", "name": NAME}, blobs[0])
    w = Worker(kind, run_dir, wd, extra_env)
    t_start = time.time()
    ready = w.wait_for(r"WORKER READY", 90)
    if kind == "hot":
        ready = ready and w.wait_for(r"Loaded .*\(epoch 0,", 30)
    time.sleep(WARMUP)  # both: a monitor runs for hours; measure steady state (our loader child is up)
    t0 = time.time()
    done: List[Dict[str, Any]] = []
    if ready:
        for u in ups:
            if w.p.poll() is not None:
                break  # the player is gone: the rest of the scenario is missed
            t_begin = time.time()
            t_complete = write_update(nn, u, blobs[u["index"]])
            done.append(dict(u, t_begin=t_begin, t_complete=t_complete))
            time.sleep(u["gap"])  # the training run's pace, not synchronisation
        if w.p.poll() is None:
            w.wait_for(r"Reloaded .*\(epoch %d," % ups[-1]["epoch"], 3.0) if kind == "hot" else time.sleep(
                2.0
            )
    died_rc = w.stop()
    elapsed = time.time() - t0
    lines = [(t, s) for t, s in w.lines]
    res = analyse(kind, ups, done, [(t, s) for t, s in lines if t >= t0])
    res.update(
        player=label,
        crashed=died_rc is not None,
        exit_code=died_rc if died_rc is not None else w.p.returncode,
        last_error=last_error_line([s for _, s in lines]),
        started=ready,
        startup_s=round(t0 - t_start, 2),
        scenario_s=round(elapsed, 1),
        updates_written=len(done),
        log=[
            "%+.3f %s" % (t - t0, s[:240])
            for t, s in lines
            if re.search(r"Loaded|Reloaded|Skipping|Evaluation|=> loading|Error|Exception|Checkpoint ", s)
        ][:400],
    )
    if res["crashed"] and res.get("crash_in_load"):
        res["bad_loads"] += 1
    shutil.rmtree(run_dir, ignore_errors=True)
    return res


def _attribute(done: List[Dict[str, Any]], name: str, t: float, key: str) -> Optional[Dict[str, Any]]:
    cands = [u for u in done if u["name"] == name and u[key] <= t]
    return cands[-1] if cands else None


def analyse(kind: str, ups, done, lines) -> Dict[str, Any]:
    noticed, valid, bad, lat = set(), set(), 0, []
    by_epoch = {u["epoch"]: u for u in done}
    crash_in_load = False
    if kind == "hot":
        for t, s in lines:
            m = re.search(r"(?:Loaded|Reloaded) (\S+) \(epoch (\S+?),", s)
            if m:
                u = by_epoch.get(int(m.group(2))) if m.group(2).lstrip("-").isdigit() else None
                if u is None:
                    bad += 1  # a version no valid update wrote
                    continue
                noticed.add(u["index"])
                if u["valid"] and u["index"] not in valid:
                    valid.add(u["index"])
                    lat.append(t - u["t_complete"])
                elif not u["valid"]:
                    bad += 1
                continue
            m = re.search(r"Skipping (\S+): ", s)
            if m:
                u = _attribute(done, os.path.basename(m.group(1)), t, "t_begin")
                if u is not None:
                    noticed.add(u["index"])
    else:
        attempt: Optional[Dict[str, Any]] = None  # {"u": update, "t": time, "loaded": bool, "failed": bool}
        attempts = []
        for t, s in lines:
            m = re.search(r"Evaluation: loading new checkpoint (\S+?)\.\.\.", s)
            if m:
                u = _attribute(done, os.path.basename(m.group(1)), t, "t_begin")
                attempt = {"u": u, "t": t, "loaded_t": None, "failed": False}
                attempts.append(attempt)
                if u is not None:
                    noticed.add(u["index"])
                continue
            if attempt is None:
                continue
            if re.search(r"=> loading checkpoint", s):
                attempt["loaded_t"] = t
            elif re.search(
                r"likely corrupted|failed to load new checkpoint|Exception during filesystem op", s
            ):
                attempt["failed"] = True
        for i, a in enumerate(attempts):
            last = i == len(attempts) - 1
            later = [s for t, s in lines if t >= a["t"]]
            crashed_here = last and any(s.startswith("Traceback") for s in later)
            if a["failed"] or crashed_here:
                bad += 1 if not crashed_here else 0  # a crash inside the load is added by play()
                crash_in_load = crash_in_load or crashed_here
                continue
            u = a["u"] if a["loaded_t"] is not None else None
            if u is None:
                continue
            # stock copies the file at the watchdog event; the copy loaded is the newest complete one
            uc = _attribute(done, u["name"], a["loaded_t"], "t_complete")
            if uc is None or not uc["valid"]:
                bad += 1
            elif uc["index"] not in valid:
                valid.add(uc["index"])
                lat.append(a["loaded_t"] - uc["t_complete"])
    n_valid = sum(1 for u in ups if u["valid"])
    return {
        "updates": len(ups),
        "valid_updates": n_valid,
        "noticed": len(noticed),
        "valid_loads": len(valid),
        "bad_loads": bad,
        "latency_p50_s": pct(lat, 50),
        "latency_p95_s": pct(lat, 95),
        "latencies_s": [round(x, 3) for x in lat],
        "crash_in_load": crash_in_load,
    }


def fmt(x: Optional[float]) -> str:
    return "-" if x is None else "%.2f s" % x


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=60)
    ap.add_argument("--wd2", default="/tmp/wd2", help="folder with watchdog 2.3.1 (pip install --target)")
    ap.add_argument("--quick", action="store_true", help="12 updates (smoke run)")
    a = ap.parse_args()
    n = 12 if a.quick else a.updates
    torch.set_num_threads(1)
    ups = make_scenario(n)
    model = build_player(tempfile.mkdtemp(prefix="rlg_cmp_ref_"), hot_reload=False).model
    blobs = scenario_bytes(ups, model)
    variants = [("stock rl-games eval mode (watchdog 7.1)", "stock", None, None)]
    wd2_ok = os.path.isdir(os.path.join(a.wd2, "watchdog"))
    if wd2_ok:
        variants.append(("stock rl-games eval mode (watchdog 2.3.1)", "stock", a.wd2, None))
        # the workaround torch's own error message suggests to a user: unpickle with weights_only=False
        variants.append(("stock, watchdog 2.3.1 + " + NO_WO, "stock", a.wd2, {NO_WO.split("=")[0]: "1"}))
    variants.append(("HotReloadPlayer (reloadInterval 0.5)", "hot", None, None))
    results = [play(label, kind, ups, blobs, wd, env) for label, kind, wd, env in variants]
    rows = []
    for r in results:
        err = (r["last_error"] or "exit %s" % r["exit_code"]).split(":")[0]
        crash = "1 (%s)" % err if r["crashed"] else "0"
        rows.append([r["player"], "%d / %d" % (r["noticed"], r["updates"]),
                     "%d / %d" % (r["valid_loads"], r["valid_updates"]), r["bad_loads"], crash,
                     "%s / %s" % (fmt(r["latency_p50_s"]), fmt(r["latency_p95_s"]))])  # fmt: skip
    print_table(
        rows, ["player", "updates noticed", "valid loads", "bad loads", "crashes", "latency p50 / p95"]
    )
    styles: Dict[str, int] = {}
    for u in ups:
        styles[u["style"]] = styles.get(u["style"], 0) + 1
    path = write_result(
        "compare_eval_mode",
        {
            "scenario": {"updates": n, "styles": styles, "list": ups},
            "method": METHOD,
            "results": results,
            "wd2_variant": wd2_ok,
        },  # fmt: skip
        "python benchmarks/compare_eval_mode.py" + (" --quick" if a.quick else ""),
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
