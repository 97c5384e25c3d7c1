"""What kind of filesystem a checkpoint folder is on: local ones deliver file events, network ones do not.

Why apart from :mod:`~rlg_hotreload.reload.events`: this is a pure lookup in ``/proc/mounts`` (testable
with a fake mounts file, no observer, no threads), and the list of network filesystem types is the one
place to extend when a user reports a mount that gives no events (NFS, SMB, SSHFS and other FUSE mounts,
9p and virtiofs deliver none for writes made on another machine).
"""

import os
from typing import Optional

#: filesystem types that deliver no events for writes made elsewhere (Linux /proc/mounts names)
NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph", "glusterfs", "lustre",
              "gpfs", "beegfs", "davfs", "virtiofs", "fuse", "vboxsf", "prl_fs", "vmhgfs"}  # fmt: skip
LOCAL_FUSE = {"fuseblk", "fuse.lxcfs"}  # ntfs-3g/exfat on a local disk; lxcfs (no checkpoints there)
MOUNTS = "/proc/mounts"


def fs_type(path: str, mounts: Optional[str] = None) -> Optional[str]:
    """The filesystem type of ``path`` (or of its nearest existing ancestor); None if unknown (no /proc)."""
    path = os.path.realpath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    best, kind = "", None
    try:
        with open(mounts or MOUNTS) as f:
            for line in f:
                fields = line.split()
                if len(fields) < 3:
                    continue
                point = fields[1].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
                inside = path == point or path.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, fields[2]
    except OSError:
        return None  # not Linux (or /proc not mounted): no way to tell, assume local
    return kind


def is_network_fs(kind: Optional[str]) -> bool:
    if kind is None or kind in LOCAL_FUSE:
        return False
    return kind in NETWORK_FS or kind.startswith("fuse.") or kind.startswith("nfs")
