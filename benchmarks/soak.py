"""Soak benchmark (not CI): >= 500 reloads with the streamer attached and clients watching.

Prints RSS, open file descriptors and threads after warm-up and at the end (targets: RSS growth < 5%,
no fd or thread growth), plus frames each client received. Writes benchmarks/results/soak.json.

Usage: python benchmarks/soak.py [--reloads 500] [--clients 4]
"""

import argparse
import os
import socket
import tempfile
import threading
import time

import psutil
import torch
from common import build_player, fake_training_checkpoint, print_table, write_result

from rlg_hotreload import PlayerCallback
from rlg_hotreload.stream import FrameStreamer
from rlg_hotreload.stream.client import MjpegClient


class ReloadSignal(PlayerCallback):
    def __init__(self):
        self.cond = threading.Condition()
        self.epochs = []

    def on_reload(self, player, info):
        with self.cond:
            self.epochs.append(info.epoch)
            self.cond.notify_all()

    def wait_epoch(self, epoch, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: epoch in self.epochs, timeout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def snapshot(proc):
    return {
        "rss_mb": proc.memory_info().rss / 1e6,
        "fds": proc.num_fds(),
        "threads": proc.num_threads(),
        "children": len(proc.children(recursive=True)),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reloads", type=int, default=500)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=30)
    a = ap.parse_args()
    torch.set_num_threads(1)
    d = tempfile.mkdtemp(prefix="rlg_soak_")
    nn = os.path.join(d, "run", "nn")
    os.makedirs(nn)
    sig = ReloadSignal()
    port = free_port()
    streamer = FrameStreamer(port=port, fps=30, size=(320, 240))
    player = build_player(d, ["reloadInterval=0.05", "numEnvs=1", "stream.enabled=true"], [sig, streamer])
    path = os.path.join(nn, "Pendulum.pth")

    def write(epoch):
        tmp = os.path.join(nn, ".Pendulum.pth.tmp")
        torch.save(fake_training_checkpoint(player.model, epoch), tmp)
        os.replace(tmp, path)

    write(0)
    player.restore(os.path.join(d, "run"))
    url = streamer.start()
    received = [0] * a.clients
    stop = threading.Event()

    def client(i):
        c = MjpegClient(url + "stream", timeout=10)
        try:
            for _ in c.parts():
                received[i] += 1
                if stop.is_set():
                    return
        finally:
            c.close()

    clients = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(a.clients)]
    for t in clients:
        t.start()
    proc = psutil.Process()
    marks = {}
    failures = []

    def writer():
        try:
            for epoch in range(1, a.reloads + 1):
                write(epoch)
                if not sig.wait_epoch(epoch, 20):
                    failures.append(epoch)
                if epoch == a.warmup:
                    marks["start"] = snapshot(proc)
                    marks["t_start"] = time.perf_counter()
            marks["end"] = snapshot(proc)
            marks["t_end"] = time.perf_counter()
        finally:
            player.request_stop()

    w = threading.Thread(target=writer, daemon=True)
    w.start()
    player.run()
    w.join(60)
    stop.set()
    for t in clients:
        t.join(15)
    streamer.stop()
    s, e = marks["start"], marks["end"]
    growth = (e["rss_mb"] - s["rss_mb"]) / s["rss_mb"] * 100
    rows = [
        ["reloads (after %d warm-up)" % a.warmup, a.reloads - a.warmup, "", ""],
        ["RSS MB start -> end", "%.1f -> %.1f (%+.2f%%)" % (s["rss_mb"], e["rss_mb"], growth), "< 5%",
         "yes" if growth < 5 else "NO"],
        ["open fds", "%d -> %d" % (s["fds"], e["fds"]), "no growth", "yes" if e["fds"] <= s["fds"] else "NO"],
        ["threads", "%d -> %d" % (s["threads"], e["threads"]), "no growth",
         "yes" if e["threads"] <= s["threads"] else "NO"],
        ["child processes", "%d -> %d" % (s["children"], e["children"]), "", ""],
        ["frames per client", " ".join(map(str, received)), "", ""],
        ["reloads not seen within 20 s", len(failures), "0", "yes" if not failures else "NO"],
    ]  # fmt: skip
    print_table(rows, ["measure", "result", "target", "met"])
    out = {"start": s, "end": e, "rss_growth_pct": growth, "frames_per_client": received,
           "reloads": a.reloads, "warmup": a.warmup, "missed": failures,
           "seconds": marks["t_end"] - marks["t_start"]}  # fmt: skip
    print(
        "wrote",
        write_result(
            "soak", out, "python benchmarks/soak.py --reloads %d --clients %d" % (a.reloads, a.clients)
        ),
    )


if __name__ == "__main__":
    main()
