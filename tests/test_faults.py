"""Fault injection into the watched folder while a real monitor process plays.

Each fault is one a real setup produces: rl-games' in-place rewrite, rsync's hidden temp file + rename,
a copy cut short, disk garbage, a checkpoint of another network, a malicious pickle, a deleted file.
"""

import os
import signal
import time

from helpers.ckpt_factory import evil_bytes, experiment_with_checkpoint, other_shape_bytes, variant_bytes
from helpers.procs import Proc


def _slow_write(path, data, pause=1.0):
    """Write half, pause (the fault itself: a slow writer), then the rest, in place."""
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
        time.sleep(pause)
        f.write(data[len(data) // 2 :])


def test_monitor_survives_faults_and_ends_on_newest_valid(trained_run, tmp_path):
    _, files = trained_run
    real = files[0]
    nn = experiment_with_checkpoint(tmp_path, real)
    marker = tmp_path / "pwned"
    mon = Proc(["config=test", "task=Pendulum-v1", "checkpoint=%s" % (tmp_path / "exp"),
                "reloadInterval=0.3", "printStats=false"], str(tmp_path))  # fmt: skip
    try:
        mon.wait_for(r"Loaded .*a\.pth \(epoch 1,", 90)

        _slow_write(nn / "a.pth", variant_bytes(real, 2))  # rl-games style: in place, slowly
        mon.wait_for(r"Reloaded .*a\.pth \(epoch 2,", 30)

        tmp = nn / ".b.pth.Xy12Zq"  # rsync style: hidden temp file, slowly, then rename
        _slow_write(tmp, variant_bytes(real, 3), pause=0.7)
        os.replace(tmp, nn / "b.pth")
        mon.wait_for(r"Reloaded .*/b\.pth \(epoch 3,", 30)

        (nn / "c.pth").write_bytes(variant_bytes(real, 4)[:5000])  # truncated copy
        mon.wait_for(r"Skipping .*c\.pth: cannot load", 30)
        (nn / "d.pth").write_bytes(os.urandom(60000))  # garbage
        mon.wait_for(r"Skipping .*d\.pth: cannot load", 30)
        (nn / "e.pth").write_bytes(evil_bytes(str(marker)))  # code execution attempt
        mon.wait_for(r"Skipping .*e\.pth: cannot load", 30)
        (nn / "f.pth").write_bytes(other_shape_bytes(real))  # another network
        mon.wait_for(r"Skipping .*f\.pth: network does not match", 30)

        (nn / "g.pth").write_bytes(variant_bytes(real, 5))
        mon.wait_for(r"Reloaded .*g\.pth \(epoch 5,", 30)
        (nn / "g.pth").unlink()  # the newest file is deleted
        (nn / "h.pth").write_bytes(variant_bytes(real, 6))
        mon.wait_for(r"Reloaded .*h\.pth \(epoch 6,", 30)

        assert mon.p.poll() is None, "monitor died"
        out = mon.output()
        assert not marker.exists(), "malicious pickle ran"
        assert "Traceback" not in out
        for bad in ("c.pth", "d.pth", "e.pth", "f.pth", ".b.pth"):
            assert mon.count(r"(Loaded|Reloaded) .*/%s" % bad.replace(".", r"\.")) == 0, bad
        for bad in ("c.pth", "d.pth", "e.pth", "f.pth"):  # warned once per file version
            assert mon.count(r"Skipping .*/%s" % bad.replace(".", r"\.")) == 1, bad
        reloads = [line for line in mon.lines if "Reloaded" in line]
        assert "h.pth (epoch 6," in reloads[-1]  # ends on the newest valid file
        assert mon.interrupt(signal.SIGTERM) < 5.0
        assert mon.p.returncode == 0
        assert "Stopping (SIGTERM)" in mon.output()
    finally:
        mon.kill()
