"""Where BlindGrasping's numbers live inside a MuJoCo model: shared by the MuJoCo and MuJoCo Warp backends.

Why one class: both backends read the same MJCF into the same ``qpos``/``qvel``/``sensordata``
layout (MuJoCo Warp keeps MuJoCo's), so addresses are looked up by name once, here, and both turn
their batched arrays into the task's :class:`SimState` with the same code.
"""

from typing import Union

import mujoco
import numpy as np
import torch

from .asset import FINGERTIP_SITES, HAND_JOINTS
from .task_core import SimState


def _selector(index: np.ndarray) -> Union[slice, torch.Tensor]:
    """A slice when ``index`` is a contiguous run (cheap view), else an index tensor."""
    idx = [int(i) for i in index]
    if idx == list(range(idx[0], idx[0] + len(idx))):
        return slice(idx[0], idx[0] + len(idx))
    return torch.tensor(idx, dtype=torch.long)


class MjLayout:
    """Addresses of hand joints, box, touch and fingertip sensors, looked up by name."""

    def __init__(self, m: mujoco.MjModel) -> None:
        self.hand_qadr = np.array([m.joint(n).qposadr[0] for n in HAND_JOINTS])
        self.hand_dadr = np.array([m.joint(n).dofadr[0] for n in HAND_JOINTS])
        for i, n in enumerate(HAND_JOINTS):
            if m.actuator(i).trnid[0] != m.joint(n).id:
                raise ValueError("actuator {} must drive joint {!r}".format(i, n))
        box_joint = m.joint("box_free")
        self.box_qadr = int(box_joint.qposadr[0])
        self.box_dadr = int(box_joint.dofadr[0])
        self.box_body = m.body("box").id
        self.box_geom = m.geom("box_geom").id
        palm_body = m.body("palm").id
        touch = [m.sensor("touch{}".format(i)).adr[0] for i in range(len(FINGERTIP_SITES))]
        tips = [m.sensor("tip{}_pos".format(i)).adr[0] for i in range(len(FINGERTIP_SITES))]
        self.touch_adr = np.array(touch)
        self.tip_adr = np.array([[a, a + 1, a + 2] for a in tips])
        self.palm_home = torch.tensor(m.body_pos[palm_body], dtype=torch.float32)
        #: hand joints' columns of qpos: a slice when contiguous, else an index tensor (see ``to``)
        self.q_sel = _selector(self.hand_qadr)
        self._qd_sel = _selector(self.hand_dadr)
        self._touch_sel = _selector(self.touch_adr)
        self._tip_sel = _selector(self.tip_adr.reshape(-1))

    def to(self, device: torch.device) -> "MjLayout":
        """Move index tensors and the palm's home position to ``device`` (in place)."""
        self.palm_home = self.palm_home.to(device)
        for name in ("q_sel", "_qd_sel", "_touch_sel", "_tip_sel"):
            sel = getattr(self, name)
            if isinstance(sel, torch.Tensor):
                setattr(self, name, sel.to(device))
        return self

    def state(self, qpos: torch.Tensor, qvel: torch.Tensor, sens: torch.Tensor) -> SimState:
        """Batch readings [N, nq] / [N, nv] / [N, nsensordata] as a :class:`SimState` of views."""
        q = qpos[:, self.q_sel]
        b = self.box_qadr
        return SimState(
            q=q,
            qd=qvel[:, self._qd_sel],
            palm_pos=self.palm_home + q[:, :3],
            touch=sens[:, self._touch_sel],
            tip_pos=sens[:, self._tip_sel].reshape(qpos.shape[0], -1, 3),
            box_pos=qpos[:, b : b + 3],
            box_quat=qpos[:, b + 3 : b + 7],
        )


def free_box_invweight(mass: torch.Tensor, inertia: torch.Tensor) -> torch.Tensor:
    """``(translational, rotational)`` mean inverse inertia [N, 2] of a free body, as mj_setConst
    computes ``body_invweight0`` (and, per DOF group, ``dof_invweight0``) for a lone free box."""
    return torch.stack((1.0 / mass, (1.0 / inertia).mean(dim=-1)), dim=-1)
