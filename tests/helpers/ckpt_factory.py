"""Build checkpoint files for fault tests from a real rl-games checkpoint (test authoring only)."""

import io

import torch


def variant_bytes(real_path, epoch: int) -> bytes:
    """The real checkpoint with its epoch set to ``epoch`` (identifies which file the player loaded)."""
    ckpt = torch.load(real_path, weights_only=False)
    ckpt["epoch"] = epoch
    # nudge the weights so different versions really are different networks
    for v in ckpt["model"].values():
        if v.is_floating_point() and v.dim() == 2:
            v.add_(0.001 * epoch)
            break
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()


def other_shape_bytes(real_path) -> bytes:
    ckpt = torch.load(real_path, weights_only=False)
    key = next(k for k, v in ckpt["model"].items() if v.dim() == 2)
    w = ckpt["model"][key]
    ckpt["model"][key] = torch.zeros(w.shape[0] * 2, w.shape[1])
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()


class Evil:
    """Unpickling this creates ``marker``: proof that code ran. weights_only must refuse it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_bytes(marker: str) -> bytes:
    buf = io.BytesIO()
    torch.save({"model": {}, "epoch": Evil(marker)}, buf)
    return buf.getvalue()


def experiment_with_checkpoint(tmp_path, real_path, epoch: int = 1):
    """``<tmp>/exp/nn/a.pth`` holding the real checkpoint as epoch ``epoch``; returns the nn folder."""
    nn = tmp_path / "exp" / "nn"
    nn.mkdir(parents=True)
    (nn / "a.pth").write_bytes(variant_bytes(real_path, epoch))
    return nn
