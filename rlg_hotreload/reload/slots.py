"""Hand-over blobs kept for reuse: the loader child writes each new checkpoint into a blob the player no
longer uses, which both processes have mapped already.

Why: a fresh blob per reload costs twice on a reload's clock. The child's shared-memory pages are new and
the kernel zeroes each one before the copy; the player maps the blob and faults its pages in one by one.
For a 15 MB network (a 50 MB rl-games checkpoint), measured on 2 cores of the GPU machine: 8 ms to
write the blob, 11 ms to map and fault it in, of a 36 ms median reload. A reused blob's pages are
already allocated and already in the player's page tables: the child overwrites them in place
(``pwrite``) and the player builds its tensors over the mapping it has.

Why it is safe: the player says which slots are free with each request, and a slot is free only when
no tensor uses its mapping (its reference count, as for unmapping: the weights in play are views of the
blob, ``load_state_dict(assign=True)``; the previous weights are kept for a rollback until the first
step succeeds; a checkpoint waiting in the mailbox holds its own). A slot that is not free is never
written; the child then makes a one-off blob as before. A slot is never closed or unmapped while its
child lives; a new child starts with none, and the old mappings go with their last tensor.

Why one made ahead: the first use of new shared memory is what costs (on a fresh VM, whose memory the
host backs on first touch, a 17 MB copy into new pages took 50-60 ms against 4 ms into used ones). So
when the child is idle (after its warm-up, after each answer) it makes the next slot and touches its
pages, until there are ten; a slot the player has never mapped is free by definition.

Why ten slots: the weights in play use one and the next checkpoint needs another, and the player keeps
the weights of the last 8 checkpoints it played for "back" (``steer.KEEP_CHECKPOINTS``, references to
the tensors that were swapped in): their blobs stay in use until they fall out of that list. Ten slots
hold no more memory than before (those blobs were mapped anyway); with fewer, every reload of a long run
would need a new blob. Blobs larger than :data:`SLOT_MAX_BYTES` are never kept (ten of them would stay
in memory for the whole session); nor are blobs with an env state (their size varies).
"""

import mmap
import sys
from typing import Dict, List, Optional, Set, Tuple

SLOTS = 10  # at least steer.KEEP_CHECKPOINTS + 2 (tests/test_loader_unmap.py checks)
SLOT_MAX_BYTES = 128 << 20


def _refs_when_unused() -> int:
    """``sys.getrefcount`` of an object held by a dict alone, read as :meth:`SlotMaps.free` reads it.

    Measured, not assumed (2 on CPython 3.8-3.13: the dict and the call's argument): an interpreter that
    counts differently must never make a slot in use look free."""
    table = {0: object()}
    return sys.getrefcount(table[0])


UNUSED_REFS = _refs_when_unused()


class ChildSlots:
    """Child side: up to :data:`SLOTS` blob descriptors kept open, by slot number."""

    def __init__(self, enabled: bool, count: int = SLOTS, max_bytes: int = SLOT_MAX_BYTES) -> None:
        self.enabled = enabled
        self.count = count
        self.max_bytes = max_bytes
        self.fds: Dict[int, Tuple[int, int]] = {}  # slot -> (descriptor, size)
        self.unseen: Set[int] = set()  # slots made ahead that the player has never mapped: free by definition

    def take(self, size: int, free: List[int]) -> Optional[Tuple[int, int]]:
        """(slot, descriptor) of a slot of this size that the player called free or has never seen, or None."""
        for k in list(free) + sorted(self.unseen):
            fd_size = self.fds.get(k)
            if fd_size is not None and fd_size[1] == size:
                self.unseen.discard(k)
                return k, fd_size[0]
        return None

    def wants_more(self, size: int) -> bool:
        """True if a blob of ``size`` made ahead would become a slot (none is waiting unseen, room left)."""
        return self.enabled and not self.unseen and len(self.fds) < self.count and 0 < size <= self.max_bytes

    def add_unseen(self, fd: int, size: int) -> None:
        """Keep a blob made ahead (call only when :meth:`wants_more` said so)."""
        k = self.adopt(fd, size)
        assert k is not None
        self.unseen.add(k)

    def adopt(self, fd: int, size: int) -> Optional[int]:
        """Keep a new blob as a slot if one is unused and it is small enough; returns its number or None."""
        if not self.enabled or not 0 < size <= self.max_bytes or len(self.fds) >= self.count:
            return None
        k = min(set(range(self.count)) - set(self.fds))
        self.fds[k] = (fd, size)
        return k


class SlotMaps:
    """Player side: the mapping of each slot of the current child, kept across reloads."""

    def __init__(self) -> None:
        self.owner: Optional[int] = None
        self.maps: Dict[int, mmap.mmap] = {}

    def free(self, child_pid: int) -> List[int]:
        """The slots no tensor uses (the child may overwrite them); forgets the slots of an earlier child."""
        if child_pid != self.owner:
            self.maps, self.owner = {}, child_pid
        return [k for k in list(self.maps) if sys.getrefcount(self.maps[k]) <= UNUSED_REFS]

    def get(self, slot: int, size: int) -> Optional[mmap.mmap]:
        mm = self.maps.get(slot)
        return mm if mm is not None and len(mm) == size else None

    def keep(self, slot: int, mm: mmap.mmap) -> None:
        self.maps[slot] = mm

    def clear(self) -> None:
        self.maps = {}
