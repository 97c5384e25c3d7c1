"""How the CPU MuJoCo backend steps its worlds: a Python thread pool, or MuJoCo's own ``mujoco.rollout``.

Why two: the pool (:class:`PoolStepper`) keeps one persistent ``MjData`` per world and calls
``mj_step(nstep=K)`` world by world (bit-for-bit the physics of continuous stepping), but every world
costs some Python under the GIL (write ctrl, step, check warnings, copy qpos/qvel/sensordata), which
serialises at ~1000 worlds on 16 threads. ``mujoco.rollout`` (:class:`RolloutStepper`) steps all
worlds from one array of states in C threads with no Python per world. Its catch: it restarts each
world from a full-physics state (qpos, qvel, act, time) and takes the solver's warm start
(``qacc_warmstart``) as an input but never returns it, so this class carries an estimate, the last
substep's velocity change over the timestep; the Newton solver converges to the same solution
(tolerance 1e-8) from a nearby start, so trajectories match continuous stepping closely but not
bit-for-bit (``tests/test_blind_grasping_rollout.py`` states the tolerance).

Why ``auto`` never picks rollout: it is 1.2-1.4x faster at 64-1024 worlds (docs/benchmarks.md section 6),
but a policy trained on it did not learn the task: the demo's training (64 envs, 2-core VM) reached no
success in 249 epochs / 3 minutes, where per-world stepping succeeds from epoch ~60 (same code, same
seed, 2026-11-26). Close single trajectories (the test above) are not the same as the same task; until
that is understood, rollout is for measurements only (``stepper="rollout"``).
"""

from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional

import mujoco
import numpy as np

_BADQACC = int(mujoco.mjtWarning.mjWARN_BADQACC)
_FULL = int(mujoco.mjtState.mjSTATE_FULLPHYSICS)
_CTRL = int(mujoco.mjtState.mjSTATE_CTRL)
STEPPERS = ("auto", "pool", "rollout")


def choose(stepper: str, num_envs: int, threads: int) -> str:
    """``pool`` or ``rollout`` for ``stepper`` (one of :data:`STEPPERS`)."""
    if stepper not in STEPPERS:
        raise ValueError("stepper={!r}: allowed: {}".format(stepper, ", ".join(STEPPERS)))
    if stepper == "auto":
        return "pool"  # see the module docstring: rollout trains a policy that does not learn the task
    return stepper


class PoolStepper:
    """Per-world ``mj_step(nstep=K)`` on persistent ``MjData``; one pool task per block of worlds."""

    def __init__(self, models: List[mujoco.MjModel], datas: List[mujoco.MjData], substeps: int,
                 threads: int, qpos: np.ndarray, qvel: np.ndarray, sens: np.ndarray) -> None:  # fmt: skip
        self.models, self.datas, self.substeps = models, datas, substeps
        self.qpos, self.qvel, self.sens = qpos, qvel, sens  # float32 staging arrays, filled in place
        n = len(models)
        self.unstable = np.zeros(n, dtype=bool)
        self.any_unstable = False
        self.badqacc = [d.warning[_BADQACC] for d in datas]  # live views into each MjData (0.8 us a lookup)
        self.pool: Optional[ThreadPoolExecutor] = None
        self.blocks: List[range] = [range(n)]
        if threads > 1 and n > 1:
            workers = min(threads, n)
            self.pool = ThreadPoolExecutor(workers)
            bounds = np.linspace(0, n, workers + 1).astype(int)
            self.blocks = [range(bounds[k], bounds[k + 1]) for k in range(workers)]

    def step(self, targets: np.ndarray) -> None:
        """Step every world K substeps under ``targets`` [N, nu]; one pool task per thread over a block
        (one task per world cost more Python, under the GIL, than a world's physics at 1024 envs)."""
        if self.pool is not None:
            list(self.pool.map(lambda block: self._block(block, targets), self.blocks))
        else:
            self._block(self.blocks[0], targets)

    def _block(self, worlds: range, targets: np.ndarray) -> None:
        step, models, datas, n = mujoco.mj_step, self.models, self.datas, self.substeps
        qpos, qvel, sens, badqacc = self.qpos, self.qvel, self.sens, self.badqacc
        for i in worlds:
            d = datas[i]
            d.ctrl[:] = targets[i]
            step(models[i], d, n)
            if badqacc[i].number > 0:
                # MuJoCo already reset this world's state; end the episode so the task resets it properly.
                self.unstable[i] = True
                self.any_unstable = True
            qpos[i] = d.qpos
            qvel[i] = d.qvel
            sens[i] = d.sensordata

    def world_reset(self, i: int) -> None:
        """World ``i``'s MjData was reset and forwarded by the backend: copy its readings."""
        d = self.datas[i]
        self.qpos[i], self.qvel[i], self.sens[i] = d.qpos, d.qvel, d.sensordata

    def sync(self, i: int) -> None:
        """Make ``datas[i]`` current (it always is here)."""

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


class RolloutStepper(PoolStepper):
    """All worlds in one ``mujoco.rollout`` call (C threads); states live in arrays, not in MjData."""

    def __init__(self, models: List[mujoco.MjModel], datas: List[mujoco.MjData], substeps: int,
                 threads: int, qpos: np.ndarray, qvel: np.ndarray, sens: np.ndarray) -> None:  # fmt: skip
        from mujoco import rollout

        super().__init__(models, datas, substeps, 1, qpos, qvel, sens)
        m = models[0]
        n, k = len(models), substeps
        self.nq, self.nv = m.nq, m.nv
        self.dt = m.opt.timestep
        nstate = mujoco.mj_stateSize(m, _FULL)
        self.state = np.zeros((n, nstate))  # each world's current full-physics state
        self.warm = np.zeros((n, m.nv))  # estimated qacc_warmstart for the next step
        self.control = np.zeros((n, k, m.nu))
        self.out_state = np.zeros((n, k, nstate))
        self.out_sens = np.zeros((n, k, m.nsensordata))
        self.thread_datas = [mujoco.MjData(m) for _ in range(max(1, threads))]
        self.roll = rollout.Rollout(nthread=threads if threads > 1 else 0)
        for i, d in enumerate(datas):
            mujoco.mj_getState(models[i], d, self.state[i], _FULL)

    def step(self, targets: np.ndarray) -> None:
        self.control[:] = targets[:, None, :]
        v, nv = 1 + self.nq, self.nv
        t0 = self.state[:, 0].copy()
        before = self.state[:, v : v + nv].copy() if self.substeps == 1 else None
        self.roll.rollout(self.models, self.thread_datas, self.state, self.control, nstep=self.substeps,
                          initial_warmstart=self.warm, state=self.out_state, sensordata=self.out_sens,
                          skip_checks=True)  # fmt: skip
        last = self.out_state[:, -1]
        self.state[:] = last
        # warm start of the next step ~ the last substep's acceleration: its velocity change over dt
        previous = self.out_state[:, -2, v : v + nv] if before is None else before
        np.subtract(last[:, v : v + nv], previous, out=self.warm)
        self.warm /= self.dt
        # rollout stops a world at its first warning (BADQACC resets it to qpos0 and time 0, then one
        # substep): its clock then lags; end its episode, as the pool does after BADQACC. (Missed only
        # with 1 substep and a divergence on a world's very first step, where the clock reads dt anyway.)
        bad = last[:, 0] < t0 + (self.substeps - 0.5) * self.dt
        if bad.any():
            self.unstable |= bad
            self.any_unstable = True
        self.qpos[:] = last[:, 1:v]
        self.qvel[:] = last[:, v : v + nv]
        self.sens[:] = self.out_sens[:, -1]

    def world_reset(self, i: int) -> None:
        super().world_reset(i)
        mujoco.mj_getState(self.models[i], self.datas[i], self.state[i], _FULL)
        self.warm[i] = self.datas[i].qacc_warmstart  # zero after mj_resetData, as the pool's next step sees

    def sync(self, i: int) -> None:
        """Load world ``i``'s state into ``datas[i]`` and forward it (for rendering and viewers)."""
        m, d = self.models[i], self.datas[i]
        mujoco.mj_setState(m, d, self.state[i], _FULL)
        d.qacc_warmstart[:] = self.warm[i]
        mujoco.mj_forward(m, d)

    def close(self) -> None:
        self.roll.close()
