"""Draw the PNGs of docs/benchmarks.md from benchmarks/results/*.json (run the benchmarks first).

Usage: python benchmarks/plots.py
"""

import json
import os
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from common import REPO, RESULTS  # noqa: E402

DOCS = os.path.join(REPO, "docs")


def load(name):
    path = os.path.join(RESULTS, name + ".json")
    if not os.path.exists(path):
        print("missing", path, "(run benchmarks/%s.py)" % name)
        return None
    with open(path) as f:
        return json.load(f)


def latency_plot():
    rl, cmp_ = load("reload_latency"), load("compare_eval_mode")
    if rl is None:
        return
    fig, ax = plt.subplots(figsize=(7, 3.6))
    series = [
        ("swapAt=step", rl["latency_swap_step"]["samples_s"]),
        ("swapAt=game (1 env)", rl["latency_swap_game"]["samples_s"]),
    ]
    if cmp_:
        ours = [r for r in cmp_["results"] if r["player"].startswith("HotReloadPlayer")]
        if ours:
            series.append(("fault scenario (compare_eval_mode)", ours[0]["latencies_s"]))
    for label, xs in series:  # empirical CDF: the p95 can be read off directly
        xs = sorted(xs)
        ax.step(xs, [(i + 1) / len(xs) for i in range(len(xs))], where="post", label="%s (n=%d)" % (label, len(xs)))
    ax.axvline(0.7, color="k", ls="--", lw=1, label="target: p95 <= 0.7 s")
    ax.axhline(0.95, color="grey", ls=":", lw=1)
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("checkpoint complete on disk -> first action from it (s), reloadInterval 0.5")
    ax.set_ylabel("fraction of reloads")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = os.path.join(DOCS, "bench_reload_latency.png")
    fig.savefig(out, dpi=110)
    print("wrote", out)


def stream_plot():
    st = load("stream")
    if st is None:
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for extra, style in ((0.0, "o-"), (1000.0, "s--")):
        rows = [r for r in st["rows"] if r["stream"] and not r["static_frame"] and r["extra_step_us"] == extra]
        rows = [r for r in rows if r["clients"] > 0]
        if not rows:
            continue
        xs = [r["clients"] for r in rows]
        label = "Pendulum" + (" + 1 ms/step" if extra else "")
        a1.plot(xs, [r["client_fps_min"] for r in rows], style, label=label + ": slowest client fps")
        a1.plot(xs, [r["encodes_per_s"] for r in rows], style, alpha=0.5, label=label + ": JPEG encodes/s")
        a2.plot(xs, [r["sim_ratio"] for r in rows], style, label=label)
    a1.set_xscale("log", base=2)
    a1.set_xlabel("clients")
    a1.set_ylabel("frames/s (cap 30)")
    a1.set_ylim(0, 35)
    a1.legend(fontsize=7)
    a2.set_xscale("log", base=2)
    a2.axhline(0.9, color="k", ls="--", lw=1, label="target 0.9")
    a2.set_xlabel("clients")
    a2.set_ylabel("sim steps/s vs streaming off")
    a2.set_ylim(0.5, 1.05)
    a2.legend(fontsize=7)
    fig.tight_layout()
    out = os.path.join(DOCS, "bench_stream_fps.png")
    fig.savefig(out, dpi=110)
    print("wrote", out)


def paired_stream_plot():
    """What watching costs a real BlindGrasping monitor (--paired): before/after the viewers' hand-over."""
    sets = [("H100, CPU policy", "stream_paired_h100_cpu_%s"), ("H100, GPU policy", "stream_paired_h100_cuda0_%s"),
            ("2-core VM, CPU policy\n(12-14 fps drawn)", "stream_paired_vm_%s")]  # fmt: skip
    rows = ["A/A (1 client, frames off/off)", "1 client", "16 clients"]
    fig, axes = plt.subplots(1, len(sets), figsize=(10, 3.4), sharey=True)
    for ax, (title, name) in zip(axes, sets):
        for k, (code, color) in enumerate((("before", "tab:grey"), ("handover", "tab:blue"))):
            res = load(name % code)
            if res is None:
                continue
            by = {r["config"]: r for r in res["rows"]}
            xs = [i + (k - 0.5) * 0.38 for i in range(len(rows))]
            meds = [by[r]["ratio"] for r in rows]
            ax.bar(xs, meds, width=0.36, color=color, label="a thread per viewer" if code == "before" else "handed over")
            for x, r in zip(xs, rows):
                ax.plot([x] * len(by[r]["ratio_runs"]), by[r]["ratio_runs"], "k.", ms=3)
        ax.axhline(0.95, color="k", ls="--", lw=1)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(["A/A", "1 viewer", "16 viewers"])
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0.7, 1.06)
    axes[0].set_ylabel("steps/s, frames on / off (30 fps cap)")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    out = os.path.join(DOCS, "bench_stream_paired.png")
    fig.savefig(out, dpi=110)
    print("wrote", out)


def stream_parts_plot():
    """One viewer's cost with the policy on the GPU: what it is made of, and the hold for the physics."""
    parts, hold = load("stream_paired_h100_cuda0_parts"), load("stream_paired_h100_cuda0_hold")
    if parts is None or hold is None:
        return
    panels = [
        ("What it is made of (68b2d34 + knobs)",
         [(label, parts["variants"][v]["rows"], "1 client") for v, label in
          (("base", "draw+encode\n(plain)"), ("norender", "encode only"), ("noencode", "neither"),
           ("nosend", "nothing sent"))]),
        ("Held for the physics (125bba7, interleaved)",
         [(label, hold["rows"], cfg) for cfg, label in
          (("A/A (1 client, frames off/off)", "A/A"), ("1 client", "1 viewer,\nheld"),
           ("1 client, not held", "1 viewer,\nnot held"), ("16 clients", "16 viewers,\nheld"))]),
    ]  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for ax, (title, bars) in zip(axes, panels):
        for i, (label, rows, cfg) in enumerate(bars):
            row = {r["config"]: r for r in rows}[cfg]
            ax.bar(i, row["ratio"], width=0.6, color="tab:grey" if "not held" in label or "plain" in label else "tab:blue")
            ax.plot([i] * len(row["ratio_runs"]), row["ratio_runs"], "k.", ms=3)
        ax.axhline(0.95, color="k", ls="--", lw=1)
        ax.set_xticks(range(len(bars)))
        ax.set_xticklabels([b[0] for b in bars], fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0.8, 1.1)
    axes[0].set_ylabel("steps/s, frames on / off (1 viewer)")
    fig.suptitle("H100, 1-env BlindGrasping monitor, policy on cuda:0, 640x480 at 30 fps", fontsize=9)
    fig.tight_layout()
    out = os.path.join(DOCS, "bench_stream_parts.png")
    fig.savefig(out, dpi=110)
    print("wrote", out)


def draw_stall_plot():
    """What a drawn frame stalls a CUDA policy for, by the frame's look; the real monitor's A/B of the shadow map."""
    looks, s1024, s2048 = (load(n) for n in ("draw_contention_h100_looks", "stream_paired_h100_shadow1024",
                                             "stream_paired_h100_shadow2048"))  # fmt: skip
    if looks is None or s1024 is None or s2048 is None:
        return
    order = [("full", "as drawn\nbefore"), ("norefl", "no\nreflection"), ("msaa2", "2x MSAA"),
             ("shadow1024", "1024²\nshadow map"), ("msaa0", "no MSAA"), ("noshadow", "no\nshadows"),
             ("bare", "none of\nthose"), ("tiny", "1 pixel")]  # fmt: skip
    rows = {r["variant"]: r for r in looks["rows"]}
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [2.2, 1.4]})
    ax = axes[0]
    for i, (v, _) in enumerate(order):
        runs = [r["stall_ms_per_frame"] for r in rows[v]["runs"]]
        ax.bar(i, rows[v]["stall_ms_per_frame"], width=0.6, color="tab:grey")
        ax.plot([i] * len(runs), runs, "k.", ms=3)
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([label for _, label in order], fontsize=8)
    ax.set_ylabel("policy stall per drawn frame (ms)")
    ax.set_title("A 1-env loop, policy on cuda:0; another process draws at 30 fps (draw_contention.py)", fontsize=9)
    ax = axes[1]
    # two A/B sessions, each on one machine: the shadow map (2048² vs 1024², 4x MSAA), then MSAA (4x vs none)
    sets = {4: ("", "_set3"), 0: ("", "_set2", "_set3")}
    msaa = {s: [d for d in (load("stream_paired_h100_cuda0%s_samples%d" % (tag, s)) for tag in tags) if d is not None]
            for s, tags in sets.items()}  # fmt: skip
    bars = [([s2048], "2048², 4x\n(A/B 1)"), ([s1024], "1024², 4x\n(A/B 1)"), (msaa[4], "1024², 4x\n(A/B 2)"),
            (msaa[0], "1024², no MSAA\n(A/B 2, now)")]  # fmt: skip
    bars = [(ds, label) for ds, label in bars if ds]
    for i, (ds, label) in enumerate(bars):
        reps = [r for d in ds for r in {x["config"]: x for x in d["rows"]}["1 client"]["repeats"]]
        runs = [r["stall_ms_per_frame"] for r in reps]
        ratio = statistics.median(r["ratio"] for r in reps)
        ax.bar(i, statistics.median(runs), width=0.6, color="tab:blue" if "now" in label else "tab:grey")
        ax.plot([i] * len(runs), runs, "k.", ms=3)
        ax.text(i, max(runs) + 0.05, "%.3fx" % ratio, ha="center", fontsize=8)
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([label for _, label in bars], fontsize=7)
    ax.set_ylim(top=ax.get_ylim()[1] + 0.15)
    ax.set_title("The real monitor, 1 viewer (label: median steps/s on/off)", fontsize=9)
    fig.suptitle("H100 (GPU EGL), BlindGrasping frames 640x480; dots: runs", fontsize=9)
    fig.tight_layout()
    out = os.path.join(DOCS, "bench_draw_stall.png")
    fig.savefig(out, dpi=110)
    print("wrote", out)


if __name__ == "__main__":
    latency_plot()
    stream_plot()
    paired_stream_plot()
    stream_parts_plot()
    draw_stall_plot()
