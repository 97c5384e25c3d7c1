"""Loading real rl-games checkpoints safely: weights only, validated, never running pickled code."""

import logging
import os
import pickle
import shutil

import pytest
import torch

from rlg_hotreload.reload import (
    CheckpointError,
    CheckpointSource,
    CheckpointWatcher,
    load_checkpoint_file,
    load_weights_only,
    model_state,
    stat_version,
)


def _reference(path):
    with open(path, "rb") as f:
        return model_state(load_weights_only(f.read()))


def test_real_checkpoint_loads_with_metadata(checkpoint_copy):
    ref = _reference(checkpoint_copy)
    loaded = load_checkpoint_file(stat_version(str(checkpoint_copy)), ref, "cpu")
    assert loaded.epoch == 10
    assert loaded.frame and loaded.frame > 0
    assert isinstance(loaded.best_reward, float)  # numpy scalar came through the allowlist
    assert set(loaded.state) == set(ref)
    assert any(k.startswith("running_mean_std.") for k in loaded.state)


def test_truncated_and_random_files_are_rejected(checkpoint_copy, tmp_path):
    ref = _reference(checkpoint_copy)
    data = checkpoint_copy.read_bytes()
    half = tmp_path / "half.pth"
    half.write_bytes(data[: len(data) // 2])
    junk = tmp_path / "junk.pth"
    junk.write_bytes(os.urandom(len(data)))
    for p in (half, junk):
        with pytest.raises(CheckpointError, match="cannot load"):
            load_checkpoint_file(stat_version(str(p)), ref, "cpu")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_never_runs(checkpoint_copy, tmp_path):
    ref = _reference(checkpoint_copy)
    marker = tmp_path / "pwned"
    zipped = tmp_path / "evil_zip.pth"
    torch.save({"model": {}, "epoch": _Evil(str(marker))}, zipped)
    legacy = tmp_path / "evil_legacy.pth"
    with open(legacy, "wb") as f:
        pickle.dump({"model": _Evil(str(marker))}, f)
    for p in (zipped, legacy):
        with pytest.raises(CheckpointError):
            load_checkpoint_file(stat_version(str(p)), ref, "cpu")
    assert not marker.exists(), "unpickling ran attacker code"


def test_other_network_shape_is_rejected(checkpoint_copy, tmp_path):
    ref = _reference(checkpoint_copy)
    ckpt = torch.load(checkpoint_copy, weights_only=False)
    key = next(k for k, v in ckpt["model"].items() if v.dim() == 2)
    ckpt["model"][key] = torch.zeros(ckpt["model"][key].shape[0] + 3, ckpt["model"][key].shape[1])
    other = tmp_path / "other.pth"
    torch.save(ckpt, other)
    with pytest.raises(CheckpointError, match="network does not match: %s" % key.replace(".", r"\.")):
        load_checkpoint_file(stat_version(str(other)), ref, "cpu")
    del ckpt["model"][key]
    torch.save(ckpt, other)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint_file(stat_version(str(other)), ref, "cpu")


def test_torch_compile_prefix_is_stripped(checkpoint_copy, tmp_path):
    ref = _reference(checkpoint_copy)
    ckpt = torch.load(checkpoint_copy, weights_only=False)
    ckpt["model"] = {"_orig_mod." + k: v for k, v in ckpt["model"].items()}
    compiled = tmp_path / "compiled.pth"
    torch.save(ckpt, compiled)
    loaded = load_checkpoint_file(stat_version(str(compiled)), ref, "cpu")
    assert set(loaded.state) == set(ref)


def test_watcher_warns_once_per_version_and_retries_on_change(checkpoint_copy, tmp_path, caplog):
    ref = _reference(checkpoint_copy)
    run = tmp_path / "run" / "nn"
    run.mkdir(parents=True)
    target = run / "a.pth"
    data = checkpoint_copy.read_bytes()
    target.write_bytes(data[:100])
    old = stat_version(str(target)).mtime_ns - 10 * 10**9  # not being written any more: warned at once
    os.utime(target, ns=(old, old))
    w = CheckpointWatcher(CheckpointSource(str(tmp_path / "run")), ref, interval=0.5, settle=0.0)
    with caplog.at_level(logging.WARNING, logger="rlg_hotreload"):
        assert not w.poll()
        assert not w.poll()
    warnings = [r for r in caplog.records if "Skipping" in r.getMessage()]
    assert len(warnings) == 1 and "a.pth" in warnings[0].getMessage()
    target.write_bytes(data)  # the file changes: a new version, tried again
    os.utime(target, ns=(1, stat_version(str(target)).mtime_ns + 10**9))
    assert w.poll()
    assert w.take().version.path == str(target)
    assert w.take() is None


def test_watcher_ignores_hidden_temp_files_and_never_rolls_back(checkpoint_copy, tmp_path):
    ref = _reference(checkpoint_copy)
    nn = tmp_path / "run" / "nn"
    nn.mkdir(parents=True)
    old, new = nn / "old.pth", nn / "new.pth"
    shutil.copy(checkpoint_copy, old)
    os.utime(old, (1_000_000, 1_000_000))
    shutil.copy(checkpoint_copy, new)
    (nn / ".new2.pth.Xa81").write_bytes(checkpoint_copy.read_bytes()[:50])  # rsync temp file
    w = CheckpointWatcher(CheckpointSource(str(tmp_path / "run")), ref, interval=0.5, settle=0.0)
    assert w.poll() and w.take().version.path == str(new)
    new.unlink()  # the newest file disappears: keep playing it, do not fall back to an older file
    assert not w.poll()
    assert w.take() is None


def test_watcher_memory_stays_bounded_under_endless_bad_rewrites(checkpoint_copy, tmp_path):
    ref = _reference(checkpoint_copy)
    nn = tmp_path / "run" / "nn"
    nn.mkdir(parents=True)
    bad = nn / "bad.pth"
    w = CheckpointWatcher(CheckpointSource(str(tmp_path / "run")), ref, interval=0.5, settle=0.0)
    for i in range(50):
        bad.write_bytes(os.urandom(1000))
        os.utime(bad, ns=(1, 10**18 + i))
        assert not w.poll()
    assert len(w.rejected) <= 1


def _variant(checkpoint_copy, tmp_path, name, edit):
    ckpt = torch.load(checkpoint_copy, weights_only=False)
    edit(ckpt)
    path = tmp_path / name
    torch.save(ckpt, path)
    return stat_version(str(path))


def _first_matrix(ckpt):
    return next(k for k, v in ckpt["model"].items() if v.dim() == 2)


@pytest.mark.parametrize(
    "name,edit,reason",
    [
        ("nan", lambda c: c["model"][_first_matrix(c)].__setitem__((0, 0), float("nan")), r"holds NaN or Inf values"),
        ("inf", lambda c: c["model"][_first_matrix(c)].__setitem__((0, 0), float("inf")), r"holds NaN or Inf values"),
        ("sparse", lambda c: c["model"].__setitem__(_first_matrix(c), c["model"][_first_matrix(c)].to_sparse()),
         r"is a sparse_coo tensor; only dense tensors are accepted"),
        ("int", lambda c: c["model"].__setitem__(_first_matrix(c), c["model"][_first_matrix(c)].long()),
         r"has dtype torch.int64, the player's is torch.float32"),
        ("listmodel", lambda c: c.__setitem__("model", [1, 2]), r"'model' is a list, not a dict of tensors"),
    ],
)  # fmt: skip
def test_unusable_tensors_are_refused_with_a_reason(checkpoint_copy, tmp_path, name, edit, reason):
    ref = _reference(checkpoint_copy)
    with pytest.raises(CheckpointError, match=reason) as err:
        load_checkpoint_file(_variant(checkpoint_copy, tmp_path, name + ".pth", edit), ref, "cpu")
    assert err.value.kind == "bad"


def test_half_precision_is_cast_and_odd_metadata_is_harmless(checkpoint_copy, tmp_path):
    ref = _reference(checkpoint_copy)

    def edit(c):
        k = _first_matrix(c)
        c["model"][k] = c["model"][k].double()
        c["epoch"] = float("inf")  # int(inf) raised OverflowError and killed the watcher
        c["frame"] = "many"

    loaded = load_checkpoint_file(_variant(checkpoint_copy, tmp_path, "odd.pth", edit), ref, "cpu")
    assert loaded.epoch is None and loaded.frame is None
    assert all(loaded.state[k].dtype == ref[k].dtype for k in ref)


def test_only_regular_files_of_bounded_size_are_read(checkpoint_copy, tmp_path):
    ref = _reference(checkpoint_copy)
    fifo = tmp_path / "x.pth"
    os.mkfifo(fifo)  # nobody writes to it: a blocking open or read would hang forever
    zero = tmp_path / "zero.pth"
    os.symlink("/dev/zero", zero)  # endless bytes: MemoryError before
    for p, reason in ((fifo, r"not a regular file \(a FIFO\)"), (zero, r"not a regular file \(a character device\)")):
        with pytest.raises(CheckpointError, match=reason):
            load_checkpoint_file(stat_version(str(p)), ref, "cpu")
    size = os.path.getsize(checkpoint_copy)
    with pytest.raises(CheckpointError, match=r"MB is more than maxCheckpointMB=0"):
        load_checkpoint_file(stat_version(str(checkpoint_copy)), ref, "cpu", max_bytes=size - 1)
    assert load_checkpoint_file(stat_version(str(checkpoint_copy)), ref, "cpu", max_bytes=size).epoch == 10
