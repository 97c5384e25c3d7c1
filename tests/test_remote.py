"""Checkpoints in object storage (issue 13): a real S3-compatible server (moto's server mode) on 127.0.0.1.

Real rl-games checkpoints are uploaded with boto3; the watcher lists and downloads them through s3fs and
loads them in the real loader child. AWS_ENDPOINT_URL always points at the local server (or a closed
local port): no test ever contacts AWS or resolves a made-up name.
"""

import json
import os
import socket
import time
import urllib.request

import pytest
from helpers.ckpt_factory import variant_bytes
from helpers.procs import Proc, cli_in_process, free_port

from rlg_hotreload.readyfile import wait_ready_file
from rlg_hotreload.reload import (
    BAD,
    TRANSIENT,
    CheckpointError,
    CheckpointWatcher,
    load_weights_only,
    make_source,
    model_state,
)  # fmt: skip
from rlg_hotreload.reload.remote import redact

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

BUCKET = "rlg-ckpts"
WAIT = 30.0
PLAY = ["config=test", "task=Pendulum-v1", "printStats=false"]
PLAY_STREAM = ["config=test_stream", "task=Pendulum-v1", "printStats=false"]


class Server:
    """moto's S3 server on a fixed local port, so it can go away and come back at the same address."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.server = None

    def start(self) -> None:
        self.server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        deadline = time.monotonic() + 10
        while True:  # bounded: the port answers once the thread serves
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def _aws_env(monkeypatch, endpoint: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


@pytest.fixture
def s3(monkeypatch):
    server = Server()
    _aws_env(monkeypatch, server.url)
    server.start()
    urllib.request.urlopen(urllib.request.Request(server.url + "/moto-api/reset", method="POST"), timeout=10).close()
    client = boto3.client("s3")  # the reset above: moto keeps buckets in this process from test to test
    client.create_bucket(Bucket=BUCKET)
    try:
        yield server, client
    finally:
        server.stop()


def _reference(path):
    with open(path, "rb") as f:
        return model_state(load_weights_only(f.read()))


def _watcher(checkpoint_copy, spec, train_dir="runs", interval=0.5):
    w = CheckpointWatcher(make_source(spec, train_dir), _reference(checkpoint_copy), interval=interval,
                          loader="process", watch="poll")  # fmt: skip
    w.start()
    return w


def _taken(w, timeout=WAIT):
    assert w.wait(timeout), "no checkpoint was prepared within %.0f s: %s" % (timeout, w.health())
    return w.take()


def _wait_log(rlg_log, text, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while rlg_log.count(text) == 0:
        assert time.monotonic() < deadline, "no log line with %r:\n%s" % (text, rlg_log.text)
        time.sleep(0.05)


def test_first_new_overwritten_and_corrupt_objects(s3, checkpoint_copy, rlg_log):
    _, client = s3
    put = lambda key, body: client.put_object(Bucket=BUCKET, Key=key, Body=body)  # noqa: E731
    put("runs/X/nn/a.pth", variant_bytes(checkpoint_copy, 1))
    put("runs/X/nn/.b.pth.tmp", b"partial upload")  # hidden names are never candidates
    w = _watcher(checkpoint_copy, "s3://%s/runs/X" % BUCKET)
    try:
        first = _taken(w)
        assert first.epoch == 1 and first.version.path == "s3://%s/runs/X/nn/a.pth" % BUCKET
        assert first.version.tag  # the ETag identifies the version
        put("runs/X/nn/b.pth", variant_bytes(checkpoint_copy, 2))
        assert _taken(w).epoch == 2
        tag = w.current_version.tag
        put("runs/X/nn/b.pth", variant_bytes(checkpoint_copy, 3))  # same key, maybe the same second
        again = _taken(w)
        assert again.epoch == 3 and again.version.tag != tag
        put("runs/X/nn/c.pth", b"not a checkpoint" * 100)
        _wait_log(rlg_log, "Skipping s3://%s/runs/X/nn/c.pth" % BUCKET)
        assert not w.ready and w.current_version.path.endswith("b.pth")  # still playing epoch 3
        put("runs/X/nn/c.pth", variant_bytes(checkpoint_copy, 4))  # the same key, now valid
        assert _taken(w).epoch == 4
        tmp = w.source._tmp
        assert tmp is not None and os.listdir(tmp) == []  # each download deleted once loaded
    finally:
        w.stop(5)
    assert not os.path.exists(tmp)
    assert not [line for line in rlg_log.lines if "Cannot" in line], rlg_log.lines


def test_the_server_going_away_and_coming_back(s3, checkpoint_copy, rlg_log):
    server, client = s3
    client.put_object(Bucket=BUCKET, Key="runs/X/nn/a.pth", Body=variant_bytes(checkpoint_copy, 1))
    w = _watcher(checkpoint_copy, "s3://%s/runs/X" % BUCKET)
    try:
        assert _taken(w).epoch == 1
        server.stop()
        _wait_log(rlg_log, "Cannot check s3://%s/runs/X" % BUCKET)
        errors = w.health()["errors"]
        deadline = time.monotonic() + WAIT
        while w.health()["errors"] < errors + 2:  # it keeps trying (with backoff), warning once
            assert time.monotonic() < deadline, w.health()
            time.sleep(0.1)
        assert rlg_log.count("Cannot check") == 1 and w.health()["alive"]
        assert "Traceback" not in rlg_log.text
        server.start()  # same port; moto keeps its data in this process
        client.put_object(Bucket=BUCKET, Key="runs/X/nn/b.pth", Body=variant_bytes(checkpoint_copy, 2))
        assert _taken(w, 60).epoch == 2
        _wait_log(rlg_log, "Checking s3://%s/runs/X again" % BUCKET)
    finally:
        w.stop(5)


@pytest.mark.integration
def test_latest_under_a_prefix_follows_the_newest_run_and_a_marker(s3):
    _, client = s3
    put = lambda key, body: client.put_object(Bucket=BUCKET, Key=key, Body=body)  # noqa: E731
    put("runs/old/nn/a.pth", b"x")
    source = make_source("latest", "s3://%s/runs" % BUCKET)
    assert [v.path for v in source.candidates()] == ["s3://%s/runs/old/nn/a.pth" % BUCKET]
    time.sleep(1.1)  # LastModified has one-second resolution: the new run must be a second newer
    put("runs/new/nn/b.pth", b"y")
    assert [v.path for v in source.candidates()] == ["s3://%s/runs/new/nn/b.pth" % BUCKET]
    put("runs/latest_train", b"old\n")  # a marker object names the run (no symlinks in a bucket)
    assert [v.path for v in source.candidates()] == ["s3://%s/runs/old/nn/a.pth" % BUCKET]
    assert source.describe() == "latest run in s3://%s/runs" % BUCKET
    assert redact("sftp://user:pw@host/runs") == "sftp://host/runs"
    single = make_source("s3://%s/runs/new/nn/b.pth" % BUCKET)
    assert [v.size for v in single.candidates()] == [1]


def test_a_download_is_capped_and_refuses_an_object_changed_since_it_was_listed(s3, checkpoint_copy):
    _, client = s3
    client.put_object(Bucket=BUCKET, Key="runs/X/nn/a.pth", Body=variant_bytes(checkpoint_copy, 1))
    source = make_source("s3://%s/runs/X" % BUCKET)
    try:
        (listed,) = source.candidates()
        with pytest.raises(CheckpointError, match="maxCheckpointMB=0") as e:
            source.fetch(listed, 100)
        assert e.value.kind == BAD
        client.put_object(Bucket=BUCKET, Key="runs/X/nn/a.pth", Body=variant_bytes(checkpoint_copy, 2))
        with pytest.raises(CheckpointError, match="changed since it was listed") as e:
            source.fetch(listed, 1 << 30)
        assert e.value.kind == TRANSIENT  # the next listing has the new version
        (new,) = source.candidates()
        local = source.fetch(new, 1 << 30)
        assert local.size == new.size and os.path.isfile(local.path)
        source.release(local)
        assert not os.path.exists(local.path)
    finally:
        source.close()


def test_play_from_s3_with_the_cli(s3, checkpoint_copy, tmp_path):
    """The real CLI with the stream: the first object, an overwrite of the same key; /status and the
    summary name the URL (with credentials in storageOptions, which are never shown)."""
    _, client = s3
    client.put_object(Bucket=BUCKET, Key="runs/X/nn/a.pth", Body=variant_bytes(checkpoint_copy, 1))
    ready = tmp_path / "stream.json"
    p = Proc(PLAY_STREAM + ["checkpoint=s3://%s/runs/X" % BUCKET, "reloadInterval=0.5",
                            "streamPort=%d" % free_port(), "streamReadyFile=%s" % ready,
                            "storageOptions={key: testing, secret: s3cr3t-value}"], str(tmp_path))  # fmt: skip
    try:
        p.wait_for(r"Loaded s3://%s/runs/X/nn/a.pth \(epoch 1," % BUCKET, 180)
        client.put_object(Bucket=BUCKET, Key="runs/X/nn/a.pth", Body=variant_bytes(checkpoint_copy, 2))
        p.wait_for(r"Reloaded s3://%s/runs/X/nn/a.pth \(epoch 2," % BUCKET, 60)
        info = wait_ready_file(str(ready), 30, alive=lambda: p.p.poll() is None)
        assert info is not None, p.output()[-3000:]
        with urllib.request.urlopen(info["url"] + "status", timeout=10) as r:
            status = r.read().decode()
        assert json.loads(status)["source"] == "s3://%s/runs/X" % BUCKET
        p.interrupt(timeout=30)
    finally:
        p.kill()
    out = p.output()
    assert "watcher: " in out and "checks of s3://%s/runs/X" % BUCKET in out, out[-2000:]
    assert "Traceback" not in out and "s3cr3t-value" not in out + status


def _one_error_line(r, *words):
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    errors = [line for line in (r.stdout + r.stderr).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    for w in words:
        assert w in errors[0], errors[0]
    return errors[0]


@pytest.mark.integration
def test_bad_remote_input_exits_2_with_one_line(s3, tmp_path, monkeypatch, capsys):
    """The CLI's answers, through its main() in this process (what is tested is the line, not a process)."""

    from s3fs import S3FileSystem

    def cli(args):
        S3FileSystem.clear_instance_cache()  # as a fresh process: no client kept from the previous case
        return cli_in_process(args, tmp_path, monkeypatch, capsys)

    url = "s3://%s/runs/X" % BUCKET
    r = cli(PLAY + ["checkpoint=s3://no-such-bucket/runs/X"])
    _one_error_line(r, "train.checkpoint=s3://no-such-bucket/runs/X", "does not exist")
    r = cli(PLAY + ["checkpoint=s3://no-such-bucket/X/nn/a.pth"])  # one object
    _one_error_line(r, "train.checkpoint=s3://no-such-bucket/X/nn/a.pth", "does not exist")
    r = cli(PLAY + ["checkpoint=%s" % url, "storageOptions={bogus_option: 1}"])
    _one_error_line(r, "train.storageOptions=['bogus_option']", "bogus_option")
    r = cli(PLAY + ["checkpoint=%s" % url, "watch=events"])
    _one_error_line(r, "train.watch=events", "auto, poll")
    r = cli(PLAY + ["checkpoint=nosuchproto://x/y"])
    _one_error_line(r, "unknown protocol 'nosuchproto'")
    r = cli(PLAY + ["checkpoint=latest", "trainDir=s3://no-such-bucket/runs"])
    _one_error_line(r, "train.trainDir=s3://no-such-bucket/runs", "does not exist")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:%d" % free_port())  # nothing listens there
    t0 = time.monotonic()
    r = cli(PLAY + ["checkpoint=%s" % url])
    _one_error_line(r, "train.checkpoint=%s" % url, "cannot reach the endpoint")
    assert time.monotonic() - t0 < 60
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3[0].url)
    r = cli(PLAY + ["checkpoint=%s" % url])
    _one_error_line(r, "train.checkpoint=%s" % url, "no credentials")
