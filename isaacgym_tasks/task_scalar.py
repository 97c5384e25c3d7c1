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

Why so few NumPy and torch calls: in the env's loop, after ~0.2 ms of physics, each costs about twice
what it costs in a tight loop (~1-2 us on an array of one row), as much as dozens of float operations. So a step reads each buffer once
(``tolist``), computes observation and reward in one pass per env, and builds its outputs from three
fresh arrays (floats, flags, contact counts) whose slices are the returned arrays; ``apply_actions``
rounds to float32 through ``array('f')`` where NumPy computes in float32 (a product or sum of two
float32 values, exact or correctly rounded in float64, rounds to the same float32), so its targets
are NumPy's bit for bit (tested).
"""

import math
from array import array
from operator import itemgetter
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .asset import NUM_BASE_JOINTS
from .task_math import CONTACT_MARGIN, TOUCH_THRESHOLD
from .task_numpy import EPISODE_KEYS, REWARD_TERMS, NumpyTaskMath

SCALAR_ENVS = 2  # up to this many envs the per-env loop beats vectorised NumPy (measured: 1 env 4x)


def _f32(x: float) -> float:
    """``x`` rounded to float32, as torch rounds a Python scalar compared with a float32 tensor."""
    return float(np.float32(x))


class ScalarTaskMath(NumpyTaskMath):
    """``apply_actions`` / ``observe`` / ``evaluate`` of :class:`NumpyTaskMath` as a loop over envs on
    Python floats."""

    def __init__(self, core: Any, layout: Any) -> None:
        super().__init__(core, layout)
        if len(REWARD_TERMS) != 8:
            raise ValueError("ScalarTaskMath.evaluate spells out 8 reward terms, not %d" % len(REWARD_TERMS))
        self._mid = self.mid.tolist()
        self._inv_half = (1.0 / self.half.astype(np.float64)).tolist()
        self._weights = self.weights.tolist()
        self._scale = self.scale.tolist()
        self._upper = self.upper.tolist()
        self._lower = self.lower.tolist()
        if any(not lo <= hi for lo, hi in zip(self._lower, self._upper)):
            raise ValueError("joint limits: every lower must be <= its upper, got %s, %s" % (self._lower, self._upper))
        self._touch = [int(a) for a in layout.touch_adr]
        self._tips = np.asarray(layout.tip_adr).reshape(-1, 3).tolist()
        self._fingers = list(zip(self._tips, self._touch))
        self._q = _picker([int(a) for a in layout.hand_qadr])
        self._qd = _picker([int(a) for a in layout.hand_dadr])
        self._b = self.box_pos.start
        self._reach = self.tip_radius + CONTACT_MARGIN
        self._hold = _f32(self.success_hold)
        self._height = _f32(self.success_height)
        self._steps = int(core.max_steps)
        self._obs_dim = self._obs.shape[1]

    def apply_actions(self, actions: np.ndarray) -> np.ndarray:
        """As ``NumpyTaskMath.apply_actions`` (same float32 bits; NaN and limits handled alike)."""
        targets, prev, scale, upper, lower = self.targets, self.prev_actions, self._scale, self._upper, self._lower
        for i, row in enumerate(actions.tolist()):
            # np.maximum(x, lo) is x unless x < lo (NaN stays), np.minimum likewise: so are these
            a = [-1.0 if x < -1.0 else (1.0 if x > 1.0 else x) for x in row]
            moved = array("f", [t + d for t, d in zip(targets[i].tolist(), array("f", [x * s for x, s in zip(a, scale)]))])
            # max(min(t, hi), lo), as hi >= lo
            targets[i] = [hi if t > hi else (lo if t < lo else t) for t, hi, lo in zip(moved, upper, lower)]
            prev[i] = a
        return targets

    def _row(self, target: List[float], act: List[float], qp: List[float], qv: List[float], s: List[float],
             progress: int) -> List[float]:  # fmt: skip
        """One env's observation (task_math.compute_observations) as Python floats."""
        mid, ih = self._mid, self._inv_half
        q = self._q(qp)
        row = [(x - m) * h for x, m, h in zip(q, mid, ih)]
        row += [x * 0.2 for x in self._qd(qv)]
        row += [(x - m) * h for x, m, h in zip(target, mid, ih)]
        row += [x * 10.0 for x in q[:NUM_BASE_JOINTS]]  # (palm_home + q - palm_home) * 10
        row += [math.log1p(0.0 if s[k] < 0.0 else s[k]) for k in self._touch]  # max(s, 0), NaN kept
        row += act
        row.append(progress / self._steps)
        return row

    def observe(self, qpos: np.ndarray, qvel: np.ndarray, sens: np.ndarray) -> np.ndarray:
        """As ``NumpyTaskMath.observe``: a fresh float32 array [N, obs_dim]."""
        rows = list(zip(self.targets.tolist(), self.prev_actions.tolist(), qpos.tolist(), qvel.tolist(),
                        sens.tolist(), self.progress.tolist()))  # fmt: skip
        return np.array([self._row(*r) for r in rows], dtype=np.float32)

    def evaluate(
        self, qpos: np.ndarray, qvel: np.ndarray, sens: np.ndarray, unstable: Optional[np.ndarray] = None
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Dict[str, Any]]:
        """As ``NumpyTaskMath.evaluate`` (same outputs, same state updates)."""
        out = StepOutputs(qpos.shape[0], self._obs_dim)
        self.evaluate_into(out, qpos, qvel, sens, unstable)
        return out.arrays()

    def evaluate_into(
        self, out: "StepOutputs", qpos: np.ndarray, qvel: np.ndarray, sens: np.ndarray,
        unstable: Optional[np.ndarray] = None,
    ) -> List[int]:  # fmt: skip
        """``evaluate`` into ``out``'s arrays (made before the physics, see StepOutputs); returns the envs done."""
        n = qpos.shape[0]
        nf = len(self._tips)
        b, table, steps, reach, touched, wts, hold = (
            self._b,
            self.table_z,
            self._steps,
            self._reach,
            TOUCH_THRESHOLD,
            self._weights,
            self.hold_time,
        )
        clock = [p + 1 for p in self.progress.tolist()]  # progress += 1 (a ufunc call costs more)
        self.progress[:] = clock
        obs: List[float] = []
        rewards, lifts, scores, contacts, dones, timeouts, successes = [], [], [], [], [], [], []
        sums = [0.0] * 8  # per term, over envs in order: sum(...) / n as NumpyTaskMath's mean
        state = zip(qpos.tolist(), qvel.tolist(), sens.tolist(), clock, self.box_half.tolist(),
                    self.box_start_xy.tolist(), self.targets.tolist(), self.prev_actions.tolist())  # fmt: skip
        for i, (qp, qv, s, progress, (hx, hy, hz), (sx, sy), target, act) in enumerate(state):
            px, py, pz, w, x, y, z = qp[b : b + 7]
            n_contact = 0
            dist = 0.0
            rot: Optional[Tuple[float, ...]] = None
            for (ia, ib, ic), it in self._fingers:
                ax, ay, az = s[ia] - px, s[ib] - py, s[ic] - pz
                dist += math.sqrt(ax * ax + ay * ay + az * az)
                if not s[it] > touched:
                    continue  # contact = touching and near: no need for the distance to the surface
                if rot is None:  # rotation matrix of the box quaternion; local = R^T rel (quat_rotate_inverse)
                    rot = (1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                           2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                           2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y))  # fmt: skip
                r00, r01, r02, r10, r11, r12, r20, r21, r22 = rot
                ex = abs(r00 * ax + r10 * ay + r20 * az) - hx
                ey = abs(r01 * ax + r11 * ay + r21 * az) - hy
                ez = abs(r02 * ax + r12 * ay + r22 * az) - hz
                # max(e, 0.0) and min(max(ex, ey, ez), 0.0) as conditionals (same picks, NaN kept)
                cx, cy, cz = 0.0 if ex < 0.0 else ex, 0.0 if ey < 0.0 else ey, 0.0 if ez < 0.0 else ez
                inner = ex
                if ey > inner:
                    inner = ey
                if ez > inner:
                    inner = ez
                surface = math.sqrt(cx * cx + cy * cy + cz * cz) + (0.0 if 0.0 < inner else inner)
                if surface < reach:
                    n_contact += 1
            lift = pz - (table + hz)
            lifted = lift >= self._height and n_contact >= 1
            hold[i] = (hold[i] + self.dt) if lifted else 0.0  # float32, as torch
            success = float(hold[i]) >= self._hold
            displaced = math.sqrt((px - sx) ** 2 + (py - sy) ** 2) > 0.15
            failure = (displaced or pz < table - 0.02 or pz > table + 0.4) and not success
            timeout = progress >= steps and not success and not failure
            if n_contact >= 2:
                raised = lift / self.success_height
                raised = 0.0 if raised < 0.0 else raised
                raised = 1.0 if 1.0 < raised else raised
            else:
                raised = 0.0
            terms = (
                1.0 - math.tanh(10.0 * dist / nf),
                n_contact / nf,
                raised,
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
            sums = [a + t for a, t in zip(sums, terms)]
            obs += self._row(target, act, qp, qv, s, progress)
            rewards.append(reward)
            lifts.append(lift)
            scores.append(float(success))
            contacts.append(n_contact)
            dones.append(done)
            timeouts.append(timeout)
            successes.append(success)
        out.floats[:] = obs + rewards + lifts + scores + [t / n for t in sums]  # rounded as np.array(.., float32)
        out.flags[:] = dones + timeouts + successes
        out.contacts[:] = contacts
        return [i for i, d in enumerate(dones) if d]


class StepOutputs:
    """One step's outputs: three fresh arrays (floats, flags, contact counts), and the tensors rl-games
    receives, which are views of them (``torch.from_numpy``: ~0.5 us each, where building each output
    array on its own, then its tensor, cost about twice that).

    Made before the physics and filled after it: in the env's loop that measured ~3 us a step cheaper
    than making them right after ``mj_step`` (2-core VM, noisy). Fresh every step, never
    refilled: rl-games' IsaacAlgoObserver keeps every step's ``episode`` dict. Same dtypes and shapes
    as TaskCore's outputs (``scores`` stays NumPy there too).
    """

    __slots__ = ("floats", "flags", "contacts", "obs", "reward", "done", "infos", "n")

    def __init__(self, n: int, obs_dim: int) -> None:
        nd, k = n * obs_dim, len(REWARD_TERMS)
        self.n = n
        self.floats = np.empty(nd + 3 * n + k, dtype=np.float32)  # obs, reward, lift, score, term means
        self.flags = np.empty(3 * n, dtype=bool)  # done, time_outs, successes
        self.contacts = np.empty(n, dtype=np.int64)
        fl, f = self.floats, torch.from_numpy
        self.obs = f(fl[:nd].reshape(n, obs_dim))
        self.reward = f(fl[nd : nd + n])
        self.done = f(self.flags[:n].view(np.uint8))
        self.infos: Dict[str, Any] = {
            "time_outs": f(self.flags[n : 2 * n]),
            "successes": f(self.flags[2 * n :]),
            "box_contacts": f(self.contacts),
            "lift": f(fl[nd + n : nd + 2 * n]),
            "episode": dict(zip(EPISODE_KEYS, f(fl[nd + 3 * n :]).unbind(0))),
            "scores": fl[nd + 2 * n : nd + 3 * n],
        }

    def arrays(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Dict[str, Any]]:
        """The outputs as ``NumpyTaskMath.evaluate`` returns them (NumPy; ``episode``: the term means)."""
        n, nd = self.n, self.obs.numel()
        infos = {k: v.numpy() for k, v in self.infos.items() if k not in ("episode", "scores")}
        infos["scores"] = self.infos["scores"]
        infos["episode"] = self.floats[nd + 3 * n :]
        return self.floats[:nd].reshape(n, -1), self.floats[nd : nd + n], self.flags[:n], infos

    def set_obs(self, obs: np.ndarray) -> None:
        """Replace the observations (after resets)."""
        self.floats[: obs.size] = obs.reshape(-1)

    def to(self, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Dict[str, Any]]:
        """``(obs, reward, done, infos)`` on ``device`` (no copy on the CPU)."""
        if device.type == "cpu":
            return self.obs, self.reward, self.done, self.infos
        infos = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.infos.items()}
        infos["episode"] = {k: v.to(device) for k, v in self.infos["episode"].items()}
        return self.obs.to(device), self.reward.to(device), self.done.to(device), infos


def _picker(index: List[int]) -> Callable[[List[float]], Sequence[float]]:
    """``values[index]`` for a list: one C call (a slice when ``index`` is a contiguous run)."""
    if index == list(range(index[0], index[0] + len(index))):
        return itemgetter(slice(index[0], index[0] + len(index)))
    return itemgetter(*index)  # a tuple (one index is a contiguous run, above)
