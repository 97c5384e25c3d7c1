"""EpisodeTracker: each env's running episode (reward, length, owning checkpoint) on the device the env's rewards come on (CPU for a NumPy env).

Why its own module: this is the one place that decides which checkpoint an episode belongs to and what
a finished episode reports (reward, length, success); the player's loop stays about stepping and
swapping weights.

Why tensors, and one copy to the host: with a GPU simulator every ``float(t[i])`` is a host sync. The
sums live on the device next to the env's rewards and dones; when envs finish, their numbers (success
included) are gathered there and copied to the host in one ``tolist()``, whatever the number of envs.

One representation of "mixed": an episode that spans a swap has no single checkpoint. Its owner is
``MIXED`` inside the tensor (tensors hold no None) and ``None`` in every :class:`EpisodeRecord`;
:meth:`EpisodeTracker.finish` is the only place that converts, and ``MIXED`` never leaves this module.
"""

from typing import Any, List, Optional

import torch

from rlg_hotreload.records import EpisodeRecord

MIXED = -1  # owner of an episode that spans a swap, in the owner tensor only (see the module docstring)


def success_signal(infos: Any, device: torch.device) -> Optional[torch.Tensor]:
    """The task's per-env success flags (``infos["successes"]``, as BlindGrasping and Isaac Gym tasks
    report them) on ``device``, or None when the task gives no such signal (e.g. gym tasks)."""
    flags = infos.get("successes") if isinstance(infos, dict) else None
    if flags is None:
        return None
    return torch.as_tensor(flags, device=device).flatten()


class EpisodeTracker:
    """Running sums of ``n`` envs; ``owner`` = index of the checkpoint that played the whole episode."""

    def __init__(self, n: int, device: Any, owner: int) -> None:
        self.reward = torch.zeros(n, dtype=torch.float32, device=device)
        self.length = torch.zeros(n, dtype=torch.float32, device=device)
        self.owner = torch.full((n,), owner, dtype=torch.long, device=device)

    def step(self, rewards: torch.Tensor) -> None:
        self.reward += rewards
        self.length += 1

    def swapped(self, index: int) -> None:
        """Weights changed between two steps: episodes under way become mixed, fresh ones are ``index``'s."""
        self.owner[self.length > 0] = MIXED
        self.claim_fresh(index)

    def claim_fresh(self, index: int) -> None:
        """Episodes that have not taken a step yet belong to checkpoint ``index`` (e.g. after a rollback)."""
        self.owner[self.length == 0] = index

    def finish(
        self, done_indices: torch.Tensor, done: torch.Tensor, successes: Optional[torch.Tensor], index: int
    ) -> List[EpisodeRecord]:
        """Records of the envs in ``done_indices`` (one host copy), then restart every env in ``done``
        under checkpoint ``index``. ``successes``: per-env flags from :func:`success_signal`, or None."""
        idx = done_indices.flatten()
        cols = [
            idx.to(torch.float64),
            self.reward[idx].double(),
            self.length[idx].double(),
            self.owner[idx].double(),
        ]
        if successes is not None:
            cols.append(successes[idx].double())
        rows = torch.stack(cols, 1).tolist()  # the one host transfer for all finished envs
        records = [
            EpisodeRecord(
                env_index=int(row[0]),
                reward=row[1],
                length=int(row[2]),
                checkpoint=None if int(row[3]) == MIXED else int(row[3]),  # the one MIXED -> None conversion
                success=None if successes is None else bool(row[4]),
            )
            for row in rows
        ]
        mask = done.bool().flatten()[: self.reward.shape[0]]
        self.reward[mask] = 0.0
        self.length[mask] = 0.0
        self.owner[mask] = index
        return records
