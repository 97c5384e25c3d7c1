"""Control from the page (issue 13.3): a real Pendulum player, its real HTTP server, real checkpoint files.

pause/resume, pin/follow and back as POST /control/<action>; 401 without the token, 403 cross-site,
405 for GET; every action logged.
"""

import http.client
import json
import signal
import socket
import urllib.request

import pytest
import torch
from helpers.controlled import ControlledRun, poll_until
from helpers.players import make_player
from helpers.procs import Proc, free_port

from rlg_hotreload import steer
from rlg_hotreload.readyfile import wait_ready_file


@pytest.fixture
def run(tmp_path):
    r = ControlledRun(tmp_path).start()
    yield r
    r.stop()


def _checks(r):
    return r.status()["watcher"]["checks"]


@pytest.mark.integration
def test_pause_stops_stepping_and_resume_continues(run, rlg_log):
    code, body = run.post("pause")
    assert code == 200 and body["ok"] is True and body["control"]["paused"] is True
    assert "Control: paused by 127.0.0.1" in body["message"]
    assert rlg_log.count("Control: paused by 127.0.0.1") == 1
    steps = run.player.summary.steps
    # time passes (the watcher goes on checking every 0.1 s: health stays live) while no step happens
    checks = _checks(run)
    poll_until(lambda: _checks(run) >= checks + 5, 20, "5 more watcher checks while paused")
    assert run.player.summary.steps == steps, "a paused player stepped"
    st = run.status()
    assert st["control"]["paused"] is True and st["steps"] == steps
    assert st["watcher"]["alive"] is True

    code, body = run.post("resume")
    assert code == 200 and body["control"]["paused"] is False
    poll_until(lambda: run.player.summary.steps > steps + 50, 20, "steps after resume")
    assert rlg_log.count("Control: resumed by 127.0.0.1") == 1


@pytest.mark.integration
def test_stop_while_paused_is_prompt(tmp_path):
    r = ControlledRun(tmp_path).start()
    try:
        assert r.post("pause")[0] == 200
    finally:
        r.stop()  # request_stop() wakes the paused loop: bounded join inside
    assert r.player.summary.steps > 0


@pytest.mark.integration
def test_pin_keeps_the_checkpoint_and_follow_swaps_the_newest_at_once(run, rlg_log):
    code, body = run.post("pin")
    assert code == 200 and body["control"]["pinned"] is True and body["control"]["following"] is False
    assert "Control: pinned a@ep1 by 127.0.0.1" in rlg_log.text
    run.save("b.pth", 2)
    run.save("c.pth", 3)  # the newest of the two waits in the mailbox
    poll_until(lambda: run.status()["control"]["newer_waiting"], 20, "the watcher to prepare c.pth")
    steps = run.player.summary.steps
    poll_until(
        lambda: run.player.summary.steps > steps + 450, 60, "two more games (swap points) while pinned"
    )
    st = run.status()
    assert st["checkpoint"]["label"] == "a@ep1" and st["checkpoints_loaded"] == 1
    assert run.weights_are(1)

    code, body = run.post("follow")
    assert code == 200 and body["control"]["following"] is True
    # applied before the answer: c (the newest) plays now, b was never played
    assert run.player.current.label == "c@ep3" and run.weights_are(3)
    st = run.status()
    assert st["checkpoint"]["label"] == "c@ep3" and st["checkpoint"]["index"] == 1
    assert [c["label"] for c in st["checkpoints"]] == ["a@ep1", "c@ep3"]
    assert st["control"]["newer_waiting"] is False
    assert "Control: following new checkpoints again (by 127.0.0.1); playing c@ep3" in rlg_log.text


@pytest.mark.integration
def test_back_plays_the_previous_checkpoint_from_memory_though_its_file_was_rewritten(run, rlg_log):
    run.save("b.pth", 2)
    poll_until(lambda: run.status()["checkpoint"]["label"] == "b@ep2", 30, "b.pth to be played")
    # rl-games rewrites <name>.pth in place: a.pth is now another network (epoch 50); pinned first, or
    # following would play it as a new checkpoint
    assert run.post("pin")[0] == 200
    run.save("a.pth", 50)
    poll_until(lambda: run.status()["control"]["newer_waiting"], 20, "the rewritten a.pth to be prepared")

    code, body = run.post("back", {"to": "previous"})
    assert code == 200 and body["ok"] is True, body
    assert "back to #0 a@ep1 by 127.0.0.1 (was b@ep2)" in body["message"]
    # the weights that played as #0 (epoch 1, kept in memory), not the file's new content (epoch 50)
    assert run.player.current.index == 0 and run.weights_are(1)
    st = run.status()
    assert st["checkpoint"]["index"] == 0 and st["checkpoint"]["label"] == "a@ep1"
    assert st["control"]["pinned"] is True
    assert [k["index"] for k in st["control"]["kept"]] == [0, 1]
    steps = run.player.summary.steps
    poll_until(lambda: run.player.summary.steps > steps + 250, 30, "a game under #0 again")
    assert run.player.current.index == 0, "pinned after back: the rewritten file must not play"

    code, body = run.post("back", {"to": "previous"})  # nothing before #0
    assert code == 409 and body["ok"] is False and "no checkpoint before a@ep1" in body["message"]
    code, body = run.post("back", {"to": 7})
    assert code == 409 and "no checkpoint #7" in body["message"]
    assert rlg_log.count("Control: back 7 refused (asked by 127.0.0.1)") == 1

    code, body = run.post("follow")  # the newest prepared one: a.pth as rewritten (epoch 50)
    assert code == 200 and run.player.current.label == "a@ep50" and run.player.current.index == 2
    assert run.weights_are(50)
    code, body = run.post("back", {"to": 1})
    assert code == 200 and run.player.current.label == "b@ep2" and run.weights_are(2)


@pytest.mark.integration
def test_back_refuses_checkpoints_no_longer_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(steer, "KEEP_CHECKPOINTS", 2)
    r = ControlledRun(tmp_path, swapAt="step").start()
    try:
        for name, epoch in (("b.pth", 2), ("c.pth", 3)):
            r.save(name, epoch)
            poll_until(lambda e=epoch: r.status()["checkpoint"]["epoch"] == e, 30, "epoch %d to play" % epoch)
        st = r.status()
        assert [k["index"] for k in st["control"]["kept"]] == [1, 2]
        code, body = r.post("back", {"to": 0})
        assert (
            code == 409
            and "#0 a@ep1 is no longer kept in memory (the last 2 played are: #1, #2)" in body["message"]
        )
        assert r.player.current.index == 2 and r.weights_are(3)
        code, body = r.post("back", {"to": "previous"})
        assert code == 200 and r.player.current.index == 1 and r.weights_are(2)
    finally:
        r.stop()


@pytest.mark.integration
def test_refused_requests(run, rlg_log):
    origin = {"Origin": "http://127.0.0.1:%d" % run.streamer.port}
    # no token / a wrong one -> 401
    assert run.post("pause", token=False)[0] == 401
    assert run.post("pause", headers={"X-Token": "wrong"})[0] == 401
    # cross-site -> 403, with the token
    code, text = run.post("pause", headers={"Origin": "http://evil.example"})
    assert code == 403 and "Origin http://evil.example is not this server" in text
    assert run.post("pause", headers={"Origin": "null"})[0] == 403
    assert run.post("pause", headers={"Sec-Fetch-Site": "cross-site"})[0] == 403
    assert run.post("pause", headers={"Sec-Fetch-Site": "same-site"})[0] == 403
    # GET -> 405; a form post (no JSON) -> 415; bad input -> 400 / 404
    code, _ = run.request("GET", "/control/pause")
    assert code == 405
    form = dict(origin, **{"Content-Type": "application/x-www-form-urlencoded"})
    assert run.request("POST", "/control/pause", b"a=1", form)[0] == 415
    code, body = run.post("back", {"to": "yesterday"})
    assert code == 400 and "to='yesterday': allowed values are 'previous' or a checkpoint index" in body
    assert (
        run.request("POST", "/control/back", b"[1]", dict(origin, **{"Content-Type": "application/json"}))[0]
        == 400
    )
    assert run.post("explode")[0] == 404
    # nothing happened, and each refusal was logged
    st = run.status()["control"]
    assert st["paused"] is False and st["pinned"] is False and st["last_action"] is None
    assert rlg_log.count("Control: refused POST /control/pause from 127.0.0.1: 401") == 2
    assert rlg_log.count("Control: refused POST /control/pause from 127.0.0.1: 403") == 4
    assert rlg_log.count("Control: refused GET /control/pause") == 1
    # curl-style (no Origin, no Sec-Fetch-Site) with the token in the query works
    status, text = run.request("POST", "/control/pause?token=s3cret", b"{}", {"Content-Type": "application/json"},
                               token=False)  # fmt: skip
    assert status == 200 and '"paused":true' in text.replace(" ", "")


def _non_loopback_address():
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: picks the outgoing interface's address
            addr = s.getsockname()[0]
    except OSError:
        return None
    return None if addr.startswith("127.") else addr


@pytest.mark.integration
def test_all_interfaces_without_token_lets_only_loopback_clients_control(tmp_path):
    addr = _non_loopback_address()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    r = ControlledRun(tmp_path, token=None, streamBindAll="true").start()
    try:
        conn = http.client.HTTPConnection(addr, r.streamer.port, timeout=15)
        conn.request("POST", "/control/pause", b"{}", {"Content-Type": "application/json"})
        resp = conn.getresponse()
        text = resp.read().decode()
        conn.close()
        assert resp.status == 403 and "needs streamToken" in text
        assert r.status()["control"]["paused"] is False
        code, body = r.post("pause")  # from 127.0.0.1
        assert code == 200 and body["control"]["paused"] is True
    finally:
        r.stop()


@pytest.mark.integration
def test_cli_paused_from_http_stops_on_ctrl_c(tmp_path):
    """The real CLI (config=test_stream): paused through POST /control/pause, then Ctrl+C ends it cleanly."""
    nn = tmp_path / "exp" / "nn"
    nn.mkdir(parents=True)
    maker = make_player(tmp_path, numEnvs=1)  # the CLI's network: its own initial weights as epoch 1
    torch.save({"model": maker.initial_state, "epoch": 1, "frame": 0, "optimizer": {}, "last_mean_rewards": 0.0,
                "env_state": None}, nn / "a.pth")  # fmt: skip
    maker.close_all()
    ready = tmp_path / "stream.json"
    mon = Proc(["config=test_stream", "task=Pendulum-v1", "checkpoint=%s" % nn.parent, "printStats=false",
                "streamPort=%d" % free_port(), "streamReadyFile=%s" % ready, "streamToken=t0k",
                "stream.width=160", "stream.height=120"], str(tmp_path))  # fmt: skip
    try:
        info = wait_ready_file(str(ready), 90, alive=lambda: mon.p.poll() is None)
        assert info is not None, mon.output()[-3000:]
        mon.wait_for(r"Loaded .*a\.pth \(epoch 1,", 90)
        req = urllib.request.Request(info["url"] + "control/pause?token=t0k", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=15) as r:
            body = json.loads(r.read())
        assert body["ok"] is True and body["control"]["paused"] is True
        mon.wait_for(r"Control: paused by 127\.0\.0\.1 \(step \d+, playing a@ep1\)", 10)
        mon.interrupt(signal.SIGINT, timeout=30)
        assert mon.p.returncode == 0, mon.output()[-3000:]
    finally:
        mon.kill()
    out = mon.output()
    assert "Stopping (SIGINT)" in out and "Summary:" in out and "Traceback" not in out


@pytest.mark.integration
def test_stream_control_false_is_view_only(tmp_path, rlg_log):
    r = ControlledRun(tmp_path, streamControl="false").start()
    try:
        assert r.status()["control"] is None  # the page hides its buttons
        code, text = r.post("pause")
        assert code == 404 and "takes no control requests" in text
        assert not r.player.control.paused and "Control: refused POST /control/pause" in rlg_log.text
    finally:
        r.stop()


@pytest.mark.integration
def test_back_before_a_new_checkpoint_stepped_forgets_it(run):
    """Paused: follow swaps b in, back leaves it before its first step. b is unproven (its first forward
    pass is what validates it, with a rollback), so it is not kept for a later back; follow reaches it
    again only when the watcher prepares a newer file."""
    assert run.post("pause")[0] == 200
    run.save("b.pth", 2)
    poll_until(lambda: run.player.watcher.ready, 20, "b.pth prepared")
    code, body = run.post("follow")
    assert code == 200 and run.player.current.label == "b@ep2"
    code, body = run.post("back", {"to": "previous"})
    assert code == 200 and run.player.current.label == "a@ep1" and run.weights_are(1)
    assert [k["index"] for k in body["control"]["kept"]] == [0]
    code, body = run.post("back", {"to": 1})
    assert code == 409 and "no longer kept" in body["message"]
    steps = run.player.summary.steps
    assert run.post("resume")[0] == 200
    poll_until(lambda: run.player.summary.steps > steps + 20, 20, "steps under a@ep1")
    assert run.player.current.label == "a@ep1"
