"""Reload benchmark for HotReloadPlayer (prints tables, writes benchmarks/results/reload_latency*.json).

``--part latency`` (benchmarks/results/reload_latency_events.json): latency from "checkpoint complete on
   disk" (renamed into place, or closed after an in-place write) to "first action from the new weights",
   swapAt=step, 1 env, for a ~50 KB and a ~50 MB checkpoint, with file events (watch=events) at
   reloadInterval 30 and 0.5 and without (watch=poll, reloadInterval 0.5); each configuration run
   ``--runs`` times (median of the runs' p50/p95, and their spread), load average printed per run.
   Target with events: p95 <= 50 ms for both sizes, whatever reloadInterval is.
``--part rest`` (benchmarks/results/reload_latency.json):
1. Latency from "checkpoint complete on disk" (atomic rename done) to "first action from the new
   weights", at reloadInterval 0.5 (poll mode), for swapAt=step and for swapAt=game (1 env). Target p95 <= 0.7 s.
2. Step times while a ~50 MB checkpoint loads in the background vs the median step. Target <= 2x.
3. HotReloadPlayer vs stock PpoPlayerContinuous steps/s on the same env and weights, steady state
   (the loader child process, started once per session, is up before timing). Target >= 0.99x.

Usage: python benchmarks/reload_latency.py [--part latency|rest|all] [--reloads 40] [--runs 3] [--quick]
"""

import argparse
import io
import os
import random
import statistics
import tempfile
import threading
import time

import torch
from common import build_player, fake_training_checkpoint, print_table, write_result

from rlg_hotreload import PlayerCallback
from rlg_hotreload.reload import ProcessLoader
from rlg_hotreload.reload.slots import SLOTS


def pct(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100.0 * (len(xs) - 1))))]


def save_atomic(obj, path):
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    if isinstance(obj, bytes):
        with open(tmp, "wb") as f:  # plain write: releases the GIL, so the writer thread disturbs no one
            f.write(obj)
    else:
        torch.save(obj, tmp)
    os.replace(tmp, path)


def serialized(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class Probe(PlayerCallback):
    """Timestamps: each step, and the first step after each reload (keyed by epoch)."""

    def __init__(self, stop_after=None):
        self.step_times = []
        self.first_action = {}
        self._pending_epoch = None
        self.stop_after = stop_after
        self.load_ms = []
        self.swapped_at = {}  # epoch -> when swap_in ran (its on_reload)
        self.phases = {}  # epoch -> the LoadedCheckpoint's phase stamps (see rlg_hotreload.reload)

    def on_reload(self, player, info):
        self._pending_epoch = info.epoch
        self.load_ms.append(info.load_ms)
        self.swapped_at[info.epoch] = time.monotonic()

    def on_step(self, player, step):
        now = time.monotonic()
        self.step_times.append(now)
        if self._pending_epoch is not None:
            # on_step runs right after the step whose action came from the new weights
            self.first_action[self._pending_epoch] = now
            self._pending_epoch = None
        if self.stop_after is not None and self.stop_after():
            player.request_stop()


def save_in_place(blob, path):
    """rl-games' way: open the final path, write, close (a reader can see a partial file)."""
    with open(path, "wb") as f:
        f.write(blob)


def latency(reloads, swap_at, num_envs, interval=0.5, watch="poll", units=None, in_place=False, pace=(0.9, 1.6)):
    d = tempfile.mkdtemp(prefix="rlg_lat_")
    nn = os.path.join(d, "run", "nn")
    os.makedirs(nn)
    done = threading.Event()
    probe = Probe(stop_after=done.is_set)
    overrides = ["reloadInterval=%g" % interval, "watch=%s" % watch, "swapAt=%s" % swap_at, "numEnvs=%d" % num_envs]
    player = build_player(d, overrides, [probe], network_units=units)
    save_atomic(fake_training_checkpoint(player.model, 0), os.path.join(nn, "Pendulum.pth"))
    player.restore(os.path.join(d, "run"))
    size = os.path.getsize(os.path.join(nn, "Pendulum.pth"))
    complete = {}
    put = player.watcher.mailbox.put

    def traced_put(loaded):
        probe.phases[loaded.epoch] = dict(loaded.phases)
        put(loaded)

    player.watcher.mailbox.put = traced_put

    blobs = {
        epoch: serialized(fake_training_checkpoint(player.model, epoch)) for epoch in range(1, reloads + 1)
    }

    def writer():
        rng = random.Random(0)
        for epoch in range(1, reloads + 1):
            time.sleep(rng.uniform(*pace))  # the training run's pace; random phase vs the poll timer
            (save_in_place if in_place else save_atomic)(blobs[epoch], os.path.join(nn, "Pendulum.pth"))
            complete[epoch] = time.monotonic()  # the clock of the phase stamps (CLOCK_MONOTONIC)
        time.sleep(2.0)
        done.set()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    player.run()
    t.join()
    lat = [probe.first_action[e] - complete[e] for e in complete if e in probe.first_action]
    if len(lat) < len(complete):  # say what the watcher saw: a missed reload is a finding, not a crash
        print("    %d of %d written checkpoints never played (watcher: %s; steps %d)"
              % (len(complete) - len(lat), len(complete), player.watcher.health(), len(probe.step_times)),
              flush=True)  # fmt: skip
        lat += [float("inf")] * (len(complete) - len(lat))  # never played = infinitely late, in the p95 too
    if units is not None:
        traced = [dict(probe.phases.get(e, {}), written=complete[e], swap=probe.swapped_at.get(e),
                       first_action=probe.first_action[e]) for e in complete if e in probe.first_action]  # fmt: skip
        return lat, len(complete), size, probe.load_ms, traced
    return lat, len(complete)


def load_stall(size_units):
    d = tempfile.mkdtemp(prefix="rlg_big_")
    nn = os.path.join(d, "run", "nn")
    os.makedirs(nn)
    spans = []
    orig = ProcessLoader.load

    def timed(*a, **k):  # the watcher thread's request -> reply span = the load, seen from the player
        t0 = time.monotonic()
        try:
            return orig(*a, **k)
        finally:
            spans.append((t0, time.monotonic()))

    ProcessLoader.load = timed
    done = threading.Event()
    probe = Probe(stop_after=done.is_set)
    player = build_player(
        d, ["reloadInterval=0.5", "swapAt=step", "numEnvs=1"], [probe], network_units=size_units
    )
    path = os.path.join(nn, "Big.pth")
    save_atomic(fake_training_checkpoint(player.model, 0), path)
    size_mb = os.path.getsize(path) / 1e6
    player.restore(os.path.join(d, "run"))
    spans.clear()

    blobs = [serialized(fake_training_checkpoint(player.model, epoch)) for epoch in range(1, 4)]

    def writer():  # bytes prepared up front: the benchmark process does no pickling while the player runs
        for blob in blobs:
            time.sleep(1.5)
            save_atomic(blob, path)
        time.sleep(1.5)
        done.set()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    player.run()
    t.join()
    ProcessLoader.load = orig
    ts = probe.step_times
    durs = [(ts[i - 1], ts[i] - ts[i - 1]) for i in range(1, len(ts))]
    median = statistics.median(x for _, x in durs)
    during = [x for t0, x in durs if any(a <= t0 <= b for a, b in spans)]
    swap_steps = [probe.first_action[e] for e in probe.first_action]
    swap_durs = [x for t0, x in durs if any(abs(t0 + x - s) < 1e-9 for s in swap_steps)]
    slow = [(round((t0 - a) * 1e3, 1), round(x * 1e3, 2)) for t0, x in durs for a, b in spans
            if a <= t0 <= b and x > 3 * median]  # fmt: skip
    return {
        "slow_steps_during_load_offset_ms_dur_ms": slow,
        "checkpoint_mb": round(size_mb, 1),
        "median_step_ms": median * 1e3,
        "max_step_during_load_ms": max(during) * 1e3 if during else float("nan"),
        "steps_during_load": len(during),
        "max_swap_step_ms": max(swap_durs) * 1e3 if swap_durs else float("nan"),
        "load_ms": [round((b - a) * 1e3, 1) for a, b in spans],
    }


def throughput(rounds, games):
    """Paired rounds (order alternating): stock, HotReload, and stock again as an A/A noise check.

    Wall-clock steps/s and CPU time per step (process_time: all threads of the player's process) are
    both recorded; the ratio reported is the median of the per-round ratios.
    """
    d = tempfile.mkdtemp(prefix="rlg_tp_")
    nn = os.path.join(d, "run", "nn")
    os.makedirs(nn)
    ckpt_path = os.path.join(nn, "Pendulum.pth")
    kinds = ("stock", "hot_reload", "stock_again")
    runs = {k: [] for k in kinds}
    for r in range(rounds):
        for kind in kinds if r % 2 else tuple(reversed(kinds)):
            hot = kind == "hot_reload"
            player = build_player(d, ["testGamesNum=%d" % games, "numEnvs=1"], hot_reload=hot)
            player.print_stats = False
            if not os.path.exists(ckpt_path):
                save_atomic(fake_training_checkpoint(player.model, 0), ckpt_path)
            player.games_num = games
            player.restore(os.path.join(d, "run") if hot else ckpt_path)
            if hot:  # steady state: the loader process is started once per session
                player.watcher.ensure_loader()
                time.sleep(1.0)  # let the child's start-up work (imports, page faults) settle
            t0, c0 = time.perf_counter(), time.process_time()
            player.run()
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            runs[kind].append({"steps_per_s": games * 200 / dt, "cpu_us_per_step": dc / (games * 200) * 1e6})
    ratio = {
        "hot_vs_stock_wall": statistics.median(
            h["steps_per_s"] / s["steps_per_s"] for h, s in zip(runs["hot_reload"], runs["stock"])
        ),
        "hot_vs_stock_cpu": statistics.median(
            s["cpu_us_per_step"] / h["cpu_us_per_step"] for h, s in zip(runs["hot_reload"], runs["stock"])
        ),
        "stock_again_vs_stock_wall": statistics.median(
            a["steps_per_s"] / s["steps_per_s"] for a, s in zip(runs["stock_again"], runs["stock"])
        ),
    }
    med = {k: statistics.median(x["steps_per_s"] for x in v) for k, v in runs.items()}
    return med, ratio, runs


SIZES = {"50KB": [64, 64], "50MB": [1600, 1600, 1024]}  # Pendulum MLPs: ~60 KB and ~50 MB with Adam state
CONFIGS = [  # (name, size, watch, reloadInterval, in place)
    ("events, interval 30, rename", "50KB", "events", 30.0, False),
    ("events, interval 30, rename", "50MB", "events", 30.0, False),
    ("events, interval 30, in place", "50KB", "events", 30.0, True),
    ("events, interval 30, in place", "50MB", "events", 30.0, True),
    ("events, interval 0.5, rename", "50KB", "events", 0.5, False),
    ("poll, interval 0.5, rename", "50KB", "poll", 0.5, False),
    ("poll, interval 0.5, rename", "50MB", "poll", 0.5, False),
]


#: a reload's way, in order: the writer's rename/close, the file event, the watcher's check, the request
#: to the loader child, the child mapped+unpickled+validated, copied into the blob, the blob mapped here,
#: the mailbox, the swap on the player thread, the end of the first step with the new weights
PHASES = ("written", "event", "check", "request", "child_loaded", "child_blob", "mapped", "put", "swap", "first_action")


def phase_breakdown(traced):
    """Median and p95 of each phase's duration (ms) over the reloads that have both of its stamps."""
    out = {}
    for a, b in zip(PHASES, PHASES[1:]):
        xs = [(t[b] - t[a]) * 1e3 for t in traced if t.get(a) is not None and t.get(b) is not None]
        if a == "written":  # a stale event stamp (from an earlier file) is not this write's event
            xs = [x for x in xs if x >= 0]
        if xs:
            out["%s->%s" % (a, b)] = {"p50": round(statistics.median(xs), 2), "p95": round(pct(xs, 95), 2)}
    return out


def latency_matrix(reloads, runs, only=None):
    rows, out = [], {"configs": []}
    for name, size, watch, interval, in_place in CONFIGS:
        if only and only not in "%s, %s" % (name, size):
            continue
        per_run = []
        for r in range(runs):
            load_before = os.getloadavg()
            pace = (0.3, 0.6) if watch == "events" else (0.9, 1.6)
            lat, written, nbytes, load_ms, traced = latency(reloads, "step", 1, interval, watch, SIZES[size], in_place,
                                                           pace)  # fmt: skip
            breakdown = phase_breakdown(traced)
            steady = lat[SLOTS:]  # once the loader child reuses its hand-over blobs (rlg_hotreload.reload.slots)
            per_run.append({
                "p50_steady_s": pct(steady, 50), "p95_steady_s": pct(steady, 95), "steady_from_reload": SLOTS + 1,
                "p50_s": pct(lat, 50), "p95_s": pct(lat, 95), "max_s": max(lat, default=float("nan")), "reloads": len(lat),
                "written": written, "checkpoint_bytes": nbytes, "load_ms_median": statistics.median(load_ms or [float("nan")]),
                "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "samples_s": [round(x, 4) for x in lat],
                "phases_ms": breakdown,
            })  # fmt: skip
            print("    where it goes (median / p95 ms): %s" % ", ".join(
                "%s %.1f/%.1f" % (k, v["p50"], v["p95"]) for k, v in breakdown.items()), flush=True)  # fmt: skip
            print("%-32s %s run %d: p50 %.1f ms, p95 %.1f ms, max %.1f ms (%d/%d, load %.1f ms; loadavg %.2f); "
                  "reloads %d+: p50 %.1f ms, p95 %.1f ms"
                  % (name, size, r + 1, pct(lat, 50) * 1e3, pct(lat, 95) * 1e3, max(lat, default=float("nan")) * 1e3,
                     len(lat), written, statistics.median(load_ms or [float("nan")]), load_before[0],
                     SLOTS + 1, pct(steady, 50) * 1e3, pct(steady, 95) * 1e3), flush=True)  # fmt: skip
        p50 = statistics.median(x["p50_s"] for x in per_run)
        p95s = [x["p95_s"] for x in per_run]
        p95_steady = statistics.median(x["p95_steady_s"] for x in per_run)
        target = 0.05 if watch == "events" else 0.7
        out["configs"].append({"name": name, "size": size, "watch": watch, "reload_interval": interval,
                               "in_place": in_place, "p50_s": p50, "p95_s": statistics.median(p95s),
                               "p95_min_max_s": [min(p95s), max(p95s)], "p95_steady_s": p95_steady,
                               "runs": per_run})  # fmt: skip
        rows.append(["%s, %s (%.0f KB)" % (name, size, per_run[0]["checkpoint_bytes"] / 1e3),
                     "%.1f / %.1f ms" % (p50 * 1e3, statistics.median(p95s) * 1e3),
                     "%.1f-%.1f ms" % (min(p95s) * 1e3, max(p95s) * 1e3), "%.1f ms" % (p95_steady * 1e3),
                     "p95 <= %g ms" % (target * 1e3), "yes" if statistics.median(p95s) <= target else "NO"])  # fmt: skip
    print_table(rows, ["configuration (swapAt=step, 1 env)", "p50 / p95 (median of runs)", "p95 range",
                       "p95, reloads %d+" % (SLOTS + 1), "target", "met"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("latency", "rest", "all"), default="all")
    ap.add_argument("--reloads", type=int, default=40, help="reloads per run (default 40: the loader child "
                    "reuses its hand-over blobs from reload %d on; both p95s are printed)" % (SLOTS + 1))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    ap.add_argument("--only", help="--part latency: the configurations whose 'name, size' contains this "
                    "(e.g. '50MB' or 'events, interval 30, rename, 50MB')")
    a = ap.parse_args()
    n = 5 if a.quick else a.reloads
    torch.set_num_threads(1)
    if a.part in ("latency", "all"):
        out = latency_matrix(n, 1 if a.quick else a.runs, a.only)
        cmd = "python benchmarks/reload_latency.py --part latency --reloads %d --runs %d" % (n, a.runs)
        cmd += " --only '%s'" % a.only if a.only else ""
        print("wrote", write_result("reload_latency_events", out, cmd + (" --quick" if a.quick else "")))
    if a.part == "latency":
        return
    rows, out = [], {}
    for swap_at, envs in (("step", 1), ("game", 1)):
        lat, written = latency(n, swap_at, envs)
        key = "latency_swap_%s" % swap_at
        out[key] = {
            "p50_s": pct(lat, 50),
            "p95_s": pct(lat, 95),
            "max_s": max(lat, default=float("nan")),
            "reloads": len(lat),
            "written": written,
            "samples_s": [round(x, 4) for x in lat],
        }
        rows.append(["latency p50/p95 (swapAt=%s, 1 env)" % swap_at, "%.3f / %.3f s" % (pct(lat, 50), pct(lat, 95)),
                     "p95 <= 0.7 s", "yes" if pct(lat, 95) <= 0.7 else "NO"])  # fmt: skip
    stall = load_stall([1536, 1536, 1024])
    out["load_stall"] = stall
    ratio = stall["max_step_during_load_ms"] / stall["median_step_ms"]
    rows.append(["max step while %.0f MB loads / median" % stall["checkpoint_mb"],
                 "%.2f ms / %.2f ms = %.2fx" % (stall["max_step_during_load_ms"], stall["median_step_ms"], ratio),
                 "<= 2x", "yes" if ratio <= 2 else "NO"])  # fmt: skip
    rows.append(["swap step (assign, no copy) / median", "%.2f ms" % stall["max_swap_step_ms"], "-", "-"])
    med, ratio, raw = throughput(3 if a.quick else 9, 10 if a.quick else 25)
    out["throughput"] = {"median_steps_per_s": med, "ratios": ratio, "runs": raw}
    rows.append(
        [
            "steps/s HotReload vs stock (paired, wall)",
            "%.0f vs %.0f: %.3fx" % (med["hot_reload"], med["stock"], ratio["hot_vs_stock_wall"]),
            ">= 0.99x",
            "yes" if ratio["hot_vs_stock_wall"] >= 0.99 else "NO",
        ]
    )
    rows.append(
        [
            "  same, CPU time per step",
            "%.3fx" % ratio["hot_vs_stock_cpu"],
            ">= 0.99x",
            "yes" if ratio["hot_vs_stock_cpu"] >= 0.99 else "NO",
        ]
    )
    rows.append(
        ["  A/A: stock vs stock (noise floor)", "%.3fx" % ratio["stock_again_vs_stock_wall"], "-", "-"]
    )
    print_table(rows, ["measure", "result", "target", "met"])
    path = write_result(
        "reload_latency", out, "python benchmarks/reload_latency.py" + (" --quick" if a.quick else "")
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
