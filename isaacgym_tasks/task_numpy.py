"""NumPy mirror of :class:`~isaacgym_tasks.task_core.TaskCore`'s per-step math, for the CPU MuJoCo backend.

Why a mirror: with one env, a control step is ~0.2 ms of physics and ~150 small torch ops (3-5 us each
in dispatch, whatever the size), so the env ran at 0.24x the raw mj_step rate; the same math on small
NumPy arrays costs a fraction of that. Why not instead of the torch code: the GPU backends (MuJoCo Warp,
Isaac Gym) need torch, and task_math stays the one definition of the task. This file follows it
function by function, and ``tests/test_blind_grasping_numpy.py`` checks that both give the same
observations, rewards, dones and infos over real episodes; change both together.

State lives in the TaskCore's own tensors (NumPy views of the same memory, updated in place), so resets
(``TaskCore.sample_resets``, torch, seeded) and this code see one state.
"""

from typing import Any, Dict, Optional, Tuple

import mujoco
import numpy as np
import torch

from .asset import NUM_BASE_JOINTS
from .task_core import TaskCore
from .task_math import CONTACT_MARGIN, TOUCH_THRESHOLD

FEW_ENVS = 8  # up to this many envs, per-env MuJoCo calls beat vectorised NumPy for the box frame
REWARD_TERMS = ("reach", "contact", "lift", "hold", "success", "success_tail", "failure", "action")


# [u]x (the cross-product matrix of u) = u @ _SKEW, reshaped to 3x3
_SKEW = np.array([[0, 0, 0, 0, 0, -1, 0, 1, 0], [0, 0, 1, 0, 0, 0, -1, 0, 0], [0, -1, 0, 1, 0, 0, 0, 0, 0]],
                 dtype=np.float32)  # fmt: skip
_EYE = np.eye(3, dtype=np.float32)


def _box_frame(quat: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """task_math.quat_rotate_inverse for [N, F, 3] vectors and [N, 4] unit quaternions: ``rel @ R(quat)``.

    The rotation matrix (one small matmul) instead of two cross products: np.cross costs ~100 us. For a
    few envs MuJoCo's ``mju_quat2Mat`` per env is cheaper than the ~12 vectorised ops.
    """
    n = quat.shape[0]
    if n <= FEW_ENVS:
        q64 = quat.astype(np.float64)
        mat = np.empty((n, 9))
        for i in range(n):
            mujoco.mju_quat2Mat(mat[i], q64[i])
        return rel @ mat.astype(np.float32).reshape(n, 3, 3)
    w = quat[:, 0:1, None]
    u = quat[:, 1:]
    rot = (2.0 * w * w - 1.0) * _EYE + 2.0 * (u[:, :, None] * u[:, None, :]) + 2.0 * w * (u @ _SKEW).reshape(-1, 3, 3)
    return rel @ rot


_add = np.add.reduce  # the ufunc method: ``ndarray.sum``/``mean`` and np.clip/np.where cost 3-10 us on tiny arrays


def _norm(x: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis."""
    return np.sqrt(_add(x * x, axis=-1))


def _slice(index: Any) -> Any:
    """A slice when ``index`` is a contiguous run (a view, ~20x cheaper than fancy indexing), else the array."""
    idx = [int(i) for i in np.asarray(index).reshape(-1)]
    if idx == list(range(idx[0], idx[0] + len(idx))):
        return slice(idx[0], idx[0] + len(idx))
    return np.asarray(idx)


class NumpyTaskMath:
    """``apply_actions`` / ``observe`` / ``evaluate`` of a CPU :class:`TaskCore`, on NumPy views of its state."""

    def __init__(self, core: TaskCore, layout: Any) -> None:
        if core.device.type != "cpu":
            raise ValueError("NumpyTaskMath needs a TaskCore on the CPU, not %s" % core.device)
        self.core = core
        cfg = core.cfg
        self.lower = core.lower.numpy()
        self.upper = core.upper.numpy()
        self.mid = 0.5 * (self.upper + self.lower)
        self.half = 0.5 * (self.upper - self.lower)
        self.scale = core.action_scale.numpy()
        self.palm_home = core.palm_home.numpy()
        self.table_z = float(core.info.table_top_z)
        self.tip_radius = float(core.info.fingertip_radius)
        self.weights = np.array([cfg.reward_weights[k] for k in REWARD_TERMS], dtype=np.float32)
        self.success_height = float(cfg.success_height)
        self.success_hold = float(cfg.success_hold_s) - 1e-6
        self.dt = np.float32(core.dt)  # torch adds the Python float to float32 tensors in float32
        b = layout.box_qadr
        self.box_pos = slice(b, b + 3)
        self.box_quat = slice(b + 3, b + 7)
        self.q_idx = _slice(layout.hand_qadr)
        self.qd_idx = _slice(layout.hand_dadr)
        self.touch_idx = _slice(layout.touch_adr)
        self.tip_idx = _slice(np.asarray(layout.tip_adr).reshape(-1))
        self.num_fingers = len(layout.touch_adr)
        n, j = core.num_envs, core.num_joints
        self._obs = np.empty((n, 4 * j + 3 + self.num_fingers + 1), dtype=np.float32)
        self.views()

    def views(self) -> None:
        """(Re)take NumPy views of the core's state tensors; call if the core replaced one."""
        c = self.core
        self.targets = c.targets.numpy()
        self.prev_actions = c.prev_actions.numpy()
        self.progress = c.progress.numpy()
        self.hold_time = c.hold_time.numpy()
        self.box_start_xy = c.box_start_xy.numpy()
        self.box_half = c.box_half.numpy()

    def apply_actions(self, actions: np.ndarray) -> np.ndarray:
        """As ``TaskCore.apply_actions``: new targets [N, J] (float32), state updated in place."""
        a = np.minimum(np.maximum(actions, -1.0, out=self.prev_actions), 1.0, out=self.prev_actions)
        np.maximum(np.minimum(self.targets + a * self.scale, self.upper), self.lower, out=self.targets)
        return self.targets

    def observe(self, qpos: np.ndarray, qvel: np.ndarray, sens: np.ndarray) -> np.ndarray:
        """As ``TaskCore.observe`` (task_math.compute_observations), into a fresh array [N, obs_dim]."""
        j = self.lower.shape[0]
        f = self.num_fingers
        o = self._obs
        q = qpos[:, self.q_idx]
        o[:, :j] = (q - self.mid) / self.half
        o[:, j : 2 * j] = qvel[:, self.qd_idx] * 0.2
        o[:, 2 * j : 3 * j] = (self.targets - self.mid) / self.half
        o[:, 3 * j : 3 * j + 3] = (self.palm_home + q[:, :NUM_BASE_JOINTS] - self.palm_home) * 10.0
        o[:, 3 * j + 3 : 3 * j + 3 + f] = np.log1p(np.maximum(sens[:, self.touch_idx], 0.0))
        o[:, 3 * j + 3 + f : 4 * j + 3 + f] = self.prev_actions
        o[:, -1] = self.progress.astype(np.float32) / np.float32(self.core.max_steps)
        return o.copy()

    def evaluate(
        self, qpos: np.ndarray, qvel: np.ndarray, sens: np.ndarray, unstable: Optional[np.ndarray] = None
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Dict[str, Any]]:
        """As ``TaskCore.evaluate``: (obs, reward, done, infos) as NumPy; infos' tensors become arrays."""
        n = qpos.shape[0]
        self.progress += 1
        box_pos = qpos[:, self.box_pos]
        box_quat = qpos[:, self.box_quat]
        touch = sens[:, self.touch_idx]
        tip_pos = sens[:, self.tip_idx].reshape(n, -1, 3)
        # task_math.fingertip_box_contact
        rel = tip_pos - box_pos[:, None, :]
        excess = np.abs(_box_frame(box_quat, rel)) - self.box_half[:, None, :]
        surface = _norm(np.maximum(excess, 0.0)) + np.minimum(np.maximum.reduce(excess, axis=-1), 0.0)
        contact = (surface < self.tip_radius + CONTACT_MARGIN) & (touch > TOUCH_THRESHOLD)
        lift = box_pos[:, 2] - (self.table_z + self.box_half[:, 2])
        n_contact = _add(contact, axis=-1, dtype=np.int64)
        lifted = (lift >= self.success_height) & (n_contact >= 1)
        # task_math.update_hold_time
        np.multiply(self.hold_time + self.dt, lifted, out=self.hold_time)  # where(lifted, h + dt, 0)
        # task_math.compute_terminations
        success = self.hold_time >= self.success_hold
        displaced = _norm(box_pos[:, :2] - self.box_start_xy) > 0.15
        fell = box_pos[:, 2] < self.table_z - 0.02
        thrown = box_pos[:, 2] > self.table_z + 0.4
        failure = (displaced | fell | thrown) & ~success
        timeout = (self.progress >= self.core.max_steps) & ~success & ~failure
        # task_math.compute_reward, terms in REWARD_TERMS order
        tip_dist = _add(_norm(rel), axis=-1) / np.float32(rel.shape[1])
        terms = np.empty((len(REWARD_TERMS), n), dtype=np.float32)
        terms[0] = 1.0 - np.tanh(10.0 * tip_dist)
        terms[1] = n_contact / np.float32(contact.shape[-1])
        terms[2] = np.minimum(np.maximum(lift / self.success_height, 0.0), 1.0) * (n_contact >= 2)
        terms[3] = lifted
        terms[4] = success
        terms[5] = success * (self.core.max_steps - self.progress).astype(np.float32)
        terms[6] = failure
        terms[7] = _add(self.prev_actions * self.prev_actions, axis=-1)
        reward = self.weights @ terms  # one matmul; torch sums term by term (differences ~1e-7 relative)
        done = success | failure | timeout
        if unstable is not None:
            done = done | unstable
            reward = np.where(unstable, np.float32(0.0), reward)
        infos: Dict[str, Any] = {
            "time_outs": timeout,
            "successes": success,
            "scores": success.astype(np.float32),
            "box_contacts": n_contact,
            "lift": lift,
            "episode": _add(terms, axis=1) / np.float32(n),  # infos_to_torch: {"rew_<term>": 0-dim tensor}
        }
        return self.observe(qpos, qvel, sens), reward, done, infos


EPISODE_KEYS = ["rew_" + k for k in REWARD_TERMS]


def infos_to_torch(infos: Dict[str, Any], device: torch.device) -> Dict[str, Any]:
    """``evaluate``'s infos as TaskCore's: tensors on ``device`` (``scores`` stays NumPy, as there)."""
    move = device.type != "cpu"
    out: Dict[str, Any] = {}
    for k, v in infos.items():
        if k != "scores":
            t = torch.from_numpy(v)
            out[k] = t.to(device) if move else t
    out["scores"] = infos["scores"]
    out["episode"] = dict(zip(EPISODE_KEYS, out["episode"].unbind(0)))
    return out
