"""Player overhead and load stall: HotReloadPlayer vs stock rl-games, each figure beside its noise floor.

Writes benchmarks/results/player_overhead.json (machine: cores, load average before/after each run).
Run: ``PYTHONPATH=$PWD python benchmarks/player_overhead.py [--runs 3] [--threads 1] [--envs 1]`` (~1-2 min).

1. **Overhead** (target >= 0.99x): a HotReloadPlayer session (loader child up, watcher polling) and two
   stock ``PpoPlayerContinuous`` players (A, B) on the same env and weights. They take turns game by game:
   the hot player's ``on_episode_end`` hands over to stock A and B (order alternating), so all three see
   the same machine load within ~0.1 s. Per round: hot vs the mean of A and B, steps/s (wall and CPU
   time), and B/A, the A/A noise floor; medians over rounds. A round's hot time runs from the callback's
   return to its next call: per-step accounting, the mailbox peek, callback dispatch (this benchmark's
   callback is the only one) and the episode bookkeeping are all inside it.
2. **Stall** (target <= 2x): a ~50 MB checkpoint (MLP 1600-1600-1024 + Adam state) is rewritten every
   1.5 s while the hot player plays with ``reloadInterval 0.5``, ``swapAt=step``. Measured: the longest
   step that starts while a load is in flight (the watcher's request to the child until the blob is
   mapped) over the median step. Noise floor: the same measure over windows of the same lengths 0.6 s
   before each write, when nothing loads.

Why game-by-game turns instead of back-to-back sessions: on a shared machine the load changes within
seconds, and a session-level ratio measured it (A/A 0.95-1.02x in earlier runs); pairing per game cancels it.

Why ``--pin CORE`` (overhead part only): on a many-core machine the scheduler moves the single-threaded
players between cores (and their caches) at will, which widened the A/A to 1.008-1.081x on 16 cores,
as wide as the gap measured. Pinned, all three players (and the idle watcher and loader child, which
inherit the affinity) run on one core: the same work measured with a narrower noise floor. The stall
part is never pinned (it measures the loader child running beside the player). CPU time per step (us)
is reported for each player too: it does not depend on what else the machine does.

``--device cuda:0``: the players' policy on the GPU, the env (Pendulum) on the CPU.
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import torch
from common import build_player, fake_training_checkpoint, print_table, write_result

from rlg_hotreload import PlayerCallback
from rlg_hotreload.reload import ProcessLoader

BIG_UNITS = [1600, 1600, 1024]  # Pendulum obs 3: 4.2 M parameters, ~50 MB with Adam's two moments
THREADS = [1]  # torch intra-op threads, from --threads
NAN = float("nan")
NO_OVERHEAD = {"hot_vs_stock_wall": NAN, "aa_wall": NAN, "hot_vs_stock_cpu": NAN, "aa_cpu": NAN,
               "cpu_us_per_step": {"hot": NAN, "A": NAN, "B": NAN}}  # fmt: skip
NO_STALL = {"stall_ratio": NAN, "quiet_ratio": NAN, "median_step_ms": NAN, "load_ms": [], "checkpoint_mb": NAN,
            "worst_step_in_phase": "-"}  # fmt: skip


DEVICE = ["cpu"]  # --device: the policy's device for every player


def make(workdir: str, overrides: Any, *args: Any, **kwargs: Any) -> Any:
    """``build_player``, then this run's thread count (rl-games' Runner applies ``torch_threads: 1``)."""
    p = build_player(workdir, [*overrides, "rl_device=%s" % DEVICE[0]], *args, **kwargs)
    torch.set_num_threads(THREADS[0])
    return p


def save_atomic(obj: Any, path: str) -> None:
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    if isinstance(obj, bytes):
        with open(tmp, "wb") as f:  # a plain write releases the GIL: the writer thread disturbs no one
            f.write(obj)
    else:
        torch.save(obj, tmp)
    os.replace(tmp, path)


def serialized(obj: Any) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def clocks() -> Tuple[float, float]:
    return time.perf_counter(), time.process_time()  # the hot player's watcher thread counts: it is its cost


def sync() -> None:
    """Wait for the GPU's queued work (``--device cuda:N``): a turn's time must include its kernels."""
    if DEVICE[0].startswith("cuda"):
        torch.cuda.synchronize()


class Turns(PlayerCallback):
    """The hot player's callback: after every ``games`` of its games, stock A and B play ``games`` each."""

    def __init__(self, stock: Dict[str, Any], games: int, rounds: int, steps_per_game: int) -> None:
        self.stock, self.games, self.rounds, self.steps = stock, games, rounds, steps_per_game
        self.seen = 0
        self.mark: Tuple[float, float] = (0.0, 0.0)
        self.rows: List[Dict[str, Tuple[float, float]]] = []  # per round: kind -> (wall s, cpu s)

    def on_start(self, player: Any) -> None:
        self.mark = clocks()

    def on_episode_end(self, player: Any, episode: Any) -> None:
        self.seen += 1
        if self.seen % self.games:
            return
        sync()
        t, c = clocks()
        row = {"hot": (t - self.mark[0], c - self.mark[1])}
        if self.seen > self.games:  # the first hot turn includes the session's start: not a round
            order = ("A", "B") if len(self.rows) % 2 else ("B", "A")
            for kind in order:
                s0, c0 = clocks()
                self.stock[kind].run()
                sync()
                s1, c1 = clocks()
                row[kind] = (s1 - s0, c1 - c0)
            self.rows.append(row)
        else:
            for kind in ("A", "B"):  # warm both up once, untimed
                self.stock[kind].run()
        if len(self.rows) >= self.rounds:
            player.request_stop()
        sync()
        self.mark = clocks()


def overhead(workdir: str, rounds: int, games: int, envs: int, pin: Optional[int] = None) -> Dict[str, Any]:
    """The paired rounds; ``pin``: run everything of this part on that one core (see the module docstring)."""
    if pin is None:
        return paired_rounds(workdir, rounds, games, envs)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {pin})  # this thread; the watcher, observer and loader child inherit it
    try:
        return dict(paired_rounds(workdir, rounds, games, envs), pinned_core=pin)
    finally:
        os.sched_setaffinity(0, before)


def paired_rounds(workdir: str, rounds: int, games: int, envs: int) -> Dict[str, Any]:
    nn = os.path.join(workdir, "run", "nn")
    os.makedirs(nn, exist_ok=True)
    path = os.path.join(nn, "Pendulum.pth")
    stock = {}
    for kind in ("A", "B"):
        p = make(workdir, ["numEnvs=%d" % envs], hot_reload=False)
        p.print_stats = False
        if not os.path.exists(path):
            save_atomic(fake_training_checkpoint(p.model, 0), path)
        p.games_num = games * envs  # stock counts a batch's finished envs as games
        p.restore(path)
        stock[kind] = p
    steps = 200 * games  # Pendulum-v1 games are 200 steps (time limit), in every env
    turns = Turns(stock, games * envs, rounds, steps)
    hot = make(workdir, ["numEnvs=%d" % envs, "testGamesNum=0"], [turns])
    hot.print_stats = False
    hot.restore(os.path.join(workdir, "run"))
    devnull = open(os.devnull, "w")
    real_stdout, sys.stdout = sys.stdout, devnull  # the stock run() prints a summary after each turn
    try:
        hot.run()
    finally:
        sys.stdout = real_stdout
        devnull.close()
    for p in stock.values():
        p.env.close()
    n = steps * envs

    def med(f: Any) -> float:
        return statistics.median(f(r) for r in turns.rows)

    return {
        "rounds": len(turns.rows),
        "steps_per_turn": n,
        # stock = the mean of A and B: two identical stock players differ by ~1-3 % here (the A/A), and
        # comparing with only one of them would carry that difference into the hot/stock figure
        "hot_vs_stock_wall": med(lambda r: (r["A"][0] + r["B"][0]) / 2 / r["hot"][0]),
        "aa_wall": med(lambda r: r["A"][0] / r["B"][0]),
        "hot_vs_stock_cpu": med(lambda r: (r["A"][1] + r["B"][1]) / 2 / r["hot"][1]),
        "aa_cpu": med(lambda r: r["A"][1] / r["B"][1]),
        "steps_per_s": {k: med(lambda r, k=k: n / r[k][0]) for k in ("hot", "A", "B")},
        "cpu_us_per_step": {k: med(lambda r, k=k: r[k][1] / n * 1e6) for k in ("hot", "A", "B")},
        "raw_s": [{k: [round(x, 5) for x in v] for k, v in r.items()} for r in turns.rows],
    }


class StepTimes(PlayerCallback):
    def __init__(self, stop: threading.Event) -> None:
        self.times: List[float] = []
        self.swaps: List[float] = []
        self.stop = stop
        self._swapped = False

    def on_reload(self, player: Any, info: Any) -> None:
        self._swapped = True

    def on_step(self, player: Any, step: int) -> None:
        now = time.perf_counter()
        self.times.append(now)
        if self._swapped:
            self.swaps.append(now)  # end of the step whose action came from the new weights
            self._swapped = False
        if self.stop.is_set():
            player.request_stop()


def stall(workdir: str, loads: int) -> Dict[str, Any]:
    nn = os.path.join(workdir, "run", "nn")
    os.makedirs(nn)
    spans: List[Tuple[float, float]] = []
    phases: List[Dict[str, float]] = []
    orig = ProcessLoader.load

    def timed(*a: Any, **k: Any) -> Any:  # the watcher's request -> mapped blob, as the player sees it
        t0 = time.perf_counter()
        try:
            loaded = orig(*a, **k)
            phases.append(dict(loaded.phases))
            return loaded
        finally:
            spans.append((t0, time.perf_counter()))

    ProcessLoader.load = timed  # type: ignore[method-assign]
    done = threading.Event()
    probe = StepTimes(done)
    try:
        player = make(workdir, ["reloadInterval=0.5", "swapAt=step", "numEnvs=1"], [probe],
                              network_units=BIG_UNITS)  # fmt: skip
        path = os.path.join(nn, "Big.pth")
        save_atomic(fake_training_checkpoint(player.model, 0), path)
        size_mb = os.path.getsize(path) / 1e6
        player.restore(os.path.join(workdir, "run"))
        blobs = [serialized(fake_training_checkpoint(player.model, e)) for e in range(1, loads + 1)]
        written: List[float] = []

        def writer() -> None:  # bytes prepared up front: no pickling in this process while it plays
            for blob in blobs:
                time.sleep(1.5)
                save_atomic(blob, path)
                written.append(time.perf_counter())
            time.sleep(1.5)
            done.set()

        spans.clear()
        phases.clear()
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        player.run()
        t.join()
    finally:
        ProcessLoader.load = orig  # type: ignore[method-assign]
    ts = probe.times
    durs = [(ts[i - 1], ts[i] - ts[i - 1]) for i in range(1, len(ts))]
    median = statistics.median(x for _, x in durs)
    swap_ends = set(probe.swaps)
    plain = [(t0, x) for t0, x in durs if t0 + x not in swap_ends]  # the swap step is reported apart

    def worst(windows: List[Tuple[float, float]]) -> float:
        inside = [x for t0, x in plain if any(a <= t0 <= b for a, b in windows)]
        return max(inside) if inside else float("nan")

    quiet = [(w - 0.6, w - 0.6 + (b - a)) for w, (a, b) in zip(written, spans)]
    offset = time.perf_counter() - time.monotonic()  # phases are monotonic stamps (same clock on Linux)

    def where(t0: float) -> str:
        """The load phase a step started in (request, child_start, child_loaded, child_blob, reply)."""
        for ph in phases:
            marks = sorted((v + offset, k) for k, v in ph.items() if k in STALL_PHASES)
            inside = [k for v, k in marks if v <= t0]
            if inside and t0 <= ph.get("mapped", 0.0) + offset:
                return inside[-1]
        return "-"

    worst_step = max(((x, t0) for t0, x in plain if any(a <= t0 <= b for a, b in spans)), default=(NAN, 0.0))
    swap_durs = [x for t0, x in durs if t0 + x in swap_ends]
    return {
        "checkpoint_mb": round(size_mb, 1),
        "median_step_ms": median * 1e3,
        "max_step_during_load_ms": worst(spans) * 1e3,
        "max_step_quiet_ms": worst(quiet) * 1e3,
        "stall_ratio": worst(spans) / median,
        "quiet_ratio": worst(quiet) / median,
        "max_swap_step_ms": max(swap_durs) * 1e3 if swap_durs else float("nan"),
        "load_ms": [round((b - a) * 1e3, 1) for a, b in spans],
        "loads": len(spans),
        # per load, ms from the request to the child (pipe), in the child (map+unpickle+validate, copy
        # into the blob), back (pipe), and mapping + touching the blob here
        "phases_ms": [phase_ms(ph) for ph in phases],
        "worst_step_in_phase": where(worst_step[1]),
    }


STALL_PHASES = ("request", "child_start", "child_loaded", "child_blob", "reply")


def phase_ms(ph: Dict[str, float]) -> Dict[str, float]:
    steps = ("request", "child_start", "child_loaded", "child_blob", "reply", "mapped")
    return {"%s->%s" % (a, b): round((ph[b] - ph[a]) * 1e3, 2) for a, b in zip(steps, steps[1:]) if a in ph and b in ph}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="consecutive runs (default 3)")
    ap.add_argument("--rounds", type=int, default=20, help="paired rounds per run (default 20)")
    ap.add_argument("--games", type=int, default=2, help="games per turn (default 2, 200 steps each)")
    ap.add_argument("--envs", type=int, default=1, help="envs per player in the overhead part (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1, as torch_threads)")
    ap.add_argument("--loads", type=int, default=3, help="50 MB loads per run in the stall part (default 3)")
    ap.add_argument("--only", choices=("overhead", "stall"), help="run one part only")
    ap.add_argument("--device", default="cpu", help="the players' rl_device: cpu (default), cuda, cuda:N")
    ap.add_argument("--pin", type=int, default=None, metavar="CORE",
                    help="overhead part: run on this one core (os.sched_setaffinity; many-core machines)")
    a = ap.parse_args()
    if not (a.device == "cpu" or a.device == "cuda" or (a.device.startswith("cuda:") and a.device[5:].isdigit())):
        print("--device=%s: allowed values are cpu, cuda, cuda:N" % a.device, file=sys.stderr)
        sys.exit(2)
    if a.device != "cpu" and not torch.cuda.is_available():
        print("--device=%s: torch sees no CUDA device here; use --device cpu" % a.device, file=sys.stderr)
        sys.exit(2)
    if a.pin is not None and (not hasattr(os, "sched_setaffinity") or a.pin not in os.sched_getaffinity(0)):
        print("--pin=%s: allowed values are the cores this process may use (%s)" % (
            a.pin, sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "none here"), file=sys.stderr)
        sys.exit(2)
    for name in ("runs", "rounds", "games", "envs", "threads", "loads"):
        if getattr(a, name) < 1:
            print("--%s=%r: must be >= 1" % (name, getattr(a, name)), file=sys.stderr)
            sys.exit(2)
    THREADS[0] = a.threads
    DEVICE[0] = a.device
    runs = []
    rows = []
    for i in range(a.runs):
        load0 = os.getloadavg()
        ov, st = NO_OVERHEAD, NO_STALL
        if a.only != "stall":
            with tempfile.TemporaryDirectory(prefix="rlg_overhead_") as d:
                ov = overhead(d, a.rounds, a.games, a.envs, a.pin)
        if a.only != "overhead":
            with tempfile.TemporaryDirectory(prefix="rlg_stall_") as d:
                st = stall(d, a.loads)
        load1 = os.getloadavg()
        runs.append({"overhead": ov, "stall": st, "loadavg_before": load0, "loadavg_after": load1})
        rows.append([
            i + 1,
            "%.3fx" % ov["hot_vs_stock_wall"], "%.3fx" % ov["aa_wall"],
            "%.3fx" % ov["hot_vs_stock_cpu"], "%.3fx" % ov["aa_cpu"],
            "%.1f / %.1f / %.1f" % tuple(ov["cpu_us_per_step"][k] for k in ("hot", "A", "B")),
            "%.2fx" % st["stall_ratio"], "%.2fx" % st["quiet_ratio"],
            "%.2f ms" % st["median_step_ms"], "/".join("%.0f" % x for x in st["load_ms"]), st["worst_step_in_phase"],
            "%.2f -> %.2f" % (load0[0], load1[0]),
        ])  # fmt: skip
        print("run %d done: overhead %.3fx (A/A %.3fx), stall %.2fx (quiet %.2fx)" % (
            i + 1, ov["hot_vs_stock_wall"], ov["aa_wall"], st["stall_ratio"], st["quiet_ratio"]), flush=True)
    print()
    print("cores: %d, torch threads: %d, envs: %d, checkpoint: %.1f MB" % (
        os.cpu_count() or 0, a.threads, a.envs, runs[0]["stall"]["checkpoint_mb"]))  # fmt: skip
    print_table(rows, ["run", "hot/stock steps/s", "A/A", "hot/stock CPU", "A/A CPU", "CPU us/step hot/A/B",
                       "max step in load/median", "same, no load", "median step", "loads ms", "worst step in",
                       "load avg"])  # fmt: skip
    print("device: %s, pinned core: %s" % (a.device, a.pin if a.pin is not None else "none"))
    for i, r in enumerate(runs):
        for j, ph in enumerate(r["stall"].get("phases_ms", [])):
            print("run %d load %d phases (ms): %s" % (i + 1, j + 1, ", ".join("%s %.1f" % kv for kv in ph.items())))
    ok_ov = all(r["overhead"]["hot_vs_stock_wall"] >= 0.99 for r in runs)  # nan (part skipped): not met
    ok_st = all(r["stall"]["stall_ratio"] <= 2.0 for r in runs)
    print("targets: steps/s >= 0.99x in every run: %s; stall <= 2x in every run: %s" % (
        "met" if ok_ov else "NOT met", "met" if ok_st else "NOT met"))  # fmt: skip
    cmd = "python benchmarks/player_overhead.py " + " ".join(sys.argv[1:])
    out = write_result("player_overhead", {"args": vars(a), "runs": runs, "cores": os.cpu_count(),
                                           "targets_met": {"overhead": ok_ov, "stall": ok_st}}, cmd.strip())  # fmt: skip
    print("wrote", out)


if __name__ == "__main__":
    main()
