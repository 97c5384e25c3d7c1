"""Per-env scalar (plain Python float) version of the NumPy task math, for one or a few envs.

Why: at one env a control step is ~0.2 ms of physics, and the vectorised NumPy mirror
(:mod:`isaacgym_tasks.task_numpy`) still spends ~60 us in ~110 NumPy calls of ~0.5-1 us each on
arrays of one row; the same formulas on Python floats cost a few microseconds per env. Above a few
envs the loop loses to NumPy, so the backend picks this class only up to :data:`SCALAR_ENVS`.

The formulas follow task_math (through task_numpy) term by term; quantities the torch code keeps in
float32 state (hold time, targets, previous actions) are stored back into the same float32 arrays, so
thresholds on them compare the same numbers; everything else is float64 here and float32 in torch
(differences ~1e-7 relative). ``tests/test_blind_grasping_numpy.py`` runs real episodes through this
path and TaskCore's torch path and requires the same observations, rewards, dones and infos.
"""

import math
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .asset import NUM_BASE_JOINTS
from .task_math import CONTACT_MARGIN, TOUCH_THRESHOLD
from .task_numpy import REWARD_TERMS, NumpyTaskMath

SCALAR_ENVS = 2  # up to this many envs the per-env loop beats vectorised NumPy (measured: 1 env 4x)


def _f32(x: float) -> float:
    """``x`` rounded to float32, as torch rounds a Python scalar compared with a float32 tensor."""
    return float(np.float32(x))


class ScalarTaskMath(NumpyTaskMath):
    """``observe`` / ``evaluate`` of :class:`NumpyTaskMath` as a loop over envs on Python floats."""

    def __init__(self, core: Any, layout: Any) -> None:
        super().__init__(core, layout)
        if len(REWARD_TERMS) != 8:
            raise ValueError("ScalarTaskMath.evaluate spells out 8 reward terms, not %d" % len(REWARD_TERMS))
        self._mid = self.mid.tolist()
        self._inv_half = (1.0 / self.half.astype(np.float64)).tolist()
        self._weights = self.weights.tolist()
        self._touch = [int(a) for a in layout.touch_adr]
        self._tips = np.asarray(layout.tip_adr).reshape(-1, 3).tolist()
        self._q = [int(a) for a in layout.hand_qadr]
        self._qd = [int(a) for a in layout.hand_dadr]
        self._b = self.box_pos.start
        self._reach = self.tip_radius + CONTACT_MARGIN
        self._hold = _f32(self.success_hold)
        self._height = _f32(self.success_height)
        self._steps = int(core.max_steps)
        self._dt = float(self.dt)

    def observe(self, qpos: np.ndarray, qvel: np.ndarray, sens: np.ndarray) -> np.ndarray:
        """As ``NumpyTaskMath.observe``: a fresh float32 array [N, obs_dim]."""
        mid, ih = self._mid, self._inv_half
        rows = []
        for i in range(qpos.shape[0]):
            qp, qv, s = qpos[i].tolist(), qvel[i].tolist(), sens[i].tolist()
            q = [qp[k] for k in self._q]
            row = [(x - m) * h for x, m, h in zip(q, mid, ih)]
            row += [qv[k] * 0.2 for k in self._qd]
            row += [(x - m) * h for x, m, h in zip(self.targets[i].tolist(), mid, ih)]
            row += [x * 10.0 for x in q[:NUM_BASE_JOINTS]]  # (palm_home + q - palm_home) * 10
            row += [math.log1p(max(s[k], 0.0)) for k in self._touch]
            row += self.prev_actions[i].tolist()
            row.append(int(self.progress[i]) / self._steps)
            rows.append(row)
        return np.array(rows, dtype=np.float32)

    def evaluate(
        self, qpos: np.ndarray, qvel: np.ndarray, sens: np.ndarray, unstable: Optional[np.ndarray] = None
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Dict[str, Any]]:
        """As ``NumpyTaskMath.evaluate`` (same outputs, same state updates)."""
        n = qpos.shape[0]
        nf = len(self._tips)
        b, table, steps, reach, touched, wts = (
            self._b,
            self.table_z,
            self._steps,
            self._reach,
            TOUCH_THRESHOLD,
            self._weights,
        )
        out = []  # per env: reward, done, timeout, success, n_contact, lift, terms
        for i in range(n):
            qp, s = qpos[i].tolist(), sens[i].tolist()
            self.progress[i] += 1
            progress = int(self.progress[i])
            px, py, pz, w, x, y, z = qp[b : b + 7]
            hx, hy, hz = self.box_half[i].tolist()
            # rotation matrix of the box quaternion; local = R^T rel (task_math.quat_rotate_inverse)
            r00, r01, r02 = 1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)
            r10, r11, r12 = 2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)
            r20, r21, r22 = 2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)
            n_contact = 0
            dist = 0.0
            for (ia, ib, ic), it in zip(self._tips, self._touch):
                ax, ay, az = s[ia] - px, s[ib] - py, s[ic] - pz
                dist += math.sqrt(ax * ax + ay * ay + az * az)
                ex = abs(r00 * ax + r10 * ay + r20 * az) - hx
                ey = abs(r01 * ax + r11 * ay + r21 * az) - hy
                ez = abs(r02 * ax + r12 * ay + r22 * az) - hz
                cx, cy, cz = max(ex, 0.0), max(ey, 0.0), max(ez, 0.0)
                surface = math.sqrt(cx * cx + cy * cy + cz * cz) + min(max(ex, ey, ez), 0.0)
                if surface < reach and s[it] > touched:
                    n_contact += 1
            lift = pz - (table + hz)
            lifted = lift >= self._height and n_contact >= 1
            self.hold_time[i] = (self.hold_time[i] + self.dt) if lifted else 0.0  # float32, as torch
            success = float(self.hold_time[i]) >= self._hold
            sx, sy = self.box_start_xy[i].tolist()
            displaced = math.sqrt((px - sx) ** 2 + (py - sy) ** 2) > 0.15
            failure = (displaced or pz < table - 0.02 or pz > table + 0.4) and not success
            timeout = progress >= steps and not success and not failure
            act = self.prev_actions[i].tolist()
            terms = (
                1.0 - math.tanh(10.0 * dist / nf),
                n_contact / nf,
                min(max(lift / self.success_height, 0.0), 1.0) if n_contact >= 2 else 0.0,
                float(lifted),
                float(success),
                float(steps - progress) if success else 0.0,
                float(failure),
                sum([a * a for a in act]),
            )
            reward = (
                wts[0] * terms[0] + wts[1] * terms[1] + wts[2] * terms[2] + wts[3] * terms[3]
                + wts[4] * terms[4] + wts[5] * terms[5] + wts[6] * terms[6] + wts[7] * terms[7]
            )  # fmt: skip
            done = success or failure or timeout
            if unstable is not None and unstable[i]:
                done, reward = True, 0.0
            out.append((reward, done, timeout, success, n_contact, lift) + terms)
        cols = list(zip(*out))
        terms_mean = np.array([sum(c) / n for c in cols[6:]], dtype=np.float32)
        successes = np.array(cols[3], dtype=bool)
        infos: Dict[str, Any] = {
            "time_outs": np.array(cols[2], dtype=bool),
            "successes": successes,
            "scores": successes.astype(np.float32),
            "box_contacts": np.array(cols[4], dtype=np.int64),
            "lift": np.array(cols[5], dtype=np.float32),
            "episode": terms_mean,
        }
        reward_arr = np.array(cols[0], dtype=np.float32)
        return self.observe(qpos, qvel, sens), reward_arr, np.array(cols[1], dtype=bool), infos
