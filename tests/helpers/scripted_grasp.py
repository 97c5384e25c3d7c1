"""A scripted "policy" for real BlindGrasping players: proves success is reported end to end.

Why a script and not a trained checkpoint: training one takes minutes; the shipped open-loop grasp
(``isaacgym_tasks.scripted``) lifts the box in most randomised episodes, and holding still never does,
so the expected success rates per checkpoint are known. Only ``get_action`` is replaced: the env, the
player's loop, the watcher, the swap and every callback are the real ones.
"""

import threading
import time

import torch

from isaacgym_tasks.scripted import grasp_action
from rlg_hotreload import PlayerCallback


def save_checkpoint(player, path, epoch=1):
    """A real rl-games checkpoint of ``player``'s network (written in place, as rl-games does)."""
    torch.save({"model": player.model.state_dict(), "epoch": epoch, "frame": 0, "optimizer": {},
                "last_mean_rewards": 0.0, "env_state": None}, path)  # fmt: skip


class ScriptedGrasp(PlayerCallback):
    """The policy of this test, by checkpoint: checkpoint 0 holds still (every episode times out, a
    failure), checkpoint 1 plays the shipped open-loop grasp (``isaacgym_tasks.scripted``, which lifts
    the box in most randomised episodes). Once checkpoint 0 has finished 2 episodes, checkpoint 1 lands
    as a new file; the player stops after 3 episodes of checkpoint 1 once ``status_seen`` is set (by
    whoever watches: a /status poller, a browser), or after ``max_s`` seconds (a bounded wait)."""

    def __init__(self, player, next_file, max_s: float = 120.0) -> None:
        self.player, self.next_file = player, next_file
        self.k = 0  # step of the current episode (one env)
        self.episodes = []
        self.status_seen = threading.Event()  # set by the /status poller
        self.deadline = time.monotonic() + max_s
        player.get_action = self.get_action  # the network is replaced by the script, nothing else

    def get_action(self, obs, is_deterministic=False):
        k, self.k = self.k, self.k + 1
        if self.player.current.index == 0:
            return torch.zeros(1, 9)
        return grasp_action(k, 1)

    def on_episode_end(self, player, episode):
        self.k = 0
        self.episodes.append(episode)
        if sum(e.checkpoint == 0 for e in self.episodes) == 2 and not self.next_file.exists():
            save_checkpoint(player, str(self.next_file), epoch=2)

    def on_step(self, player, step):
        later = player.summary.per_checkpoint.get(1)
        if (
            later is not None and later.games >= 3 and self.status_seen.is_set()
        ) or time.monotonic() > self.deadline:
            player.request_stop()


def streamed_monitor(tmp_path, callbacks, width, height, render="process", fps=30, stream=None, extra=None,
                     env_config=None):  # fmt: skip
    """A real 1-env BlindGrasping HotReloadPlayer (sim=mujoco) streaming ``width`` x ``height`` frames drawn
    where ``render`` says (None: the default), and a real checkpoint of it; returns (player, its
    FrameStreamer, the checkpoint path, the stream's ready file). ``stream``: more ``stream.*`` keys;
    ``extra``: more top-level keys; ``env_config``: more entries of the env's config. Play it with
    :func:`play_watched`."""
    from helpers.procs import free_port
    from rlg_hotreload import build
    from rlg_hotreload.stream import FrameStreamer

    ckpt = tmp_path / "exp" / "nn" / "bg.pth"
    ckpt.parent.mkdir(parents=True)
    ready = tmp_path / "stream.json"
    stream_cfg = {"enabled": True, "port": free_port(), "readyFile": str(ready), "width": width, "height": height,
                  "fps": fps, **({} if render is None else {"render": render}), **(stream or {})}  # fmt: skip
    cfg = build.load_config(
        {"task": "BlindGrasping", "sim": "mujoco", "numEnvs": 1, "checkpoint": str(tmp_path / "exp"),
         "trainDir": str(tmp_path), "printStats": False, "reloadInterval": 0, "stream": stream_cfg,
         **(extra or {})},
        preset="test",
    )  # fmt: skip

    def sized_frames(params):
        params["config"]["env_config"].update(render_width=width, render_height=height, **(env_config or {}))

    player = build.make_player(cfg, callbacks, edit=sized_frames)
    save_checkpoint(player, str(ckpt))
    streamer = next(cb for cb in player.callbacks.callbacks if isinstance(cb, FrameStreamer))
    return player, streamer, ckpt, ready


def grasping_mjwarp_env(width, height, steps=15, num_envs=2, **env_config):
    """A MuJoCo Warp BlindGrasping env (warp's CPU device) that has played ``steps`` steps of the scripted
    grasp: world 0 then holds a scene worth drawing (the hand closing on the box). Close it after use."""
    import isaacgym_tasks

    env = isaacgym_tasks.make_env(num_envs, sim="mjwarp", sim_device="cpu", rl_device="cpu",
                                  render_width=width, render_height=height, **env_config)  # fmt: skip
    for k in range(steps):
        env.step(grasp_action(k, num_envs))
    return env


def play_watched(player, checkpoint, watch, done, join_s=30.0):
    """Run ``player`` from ``checkpoint`` on this thread while ``watch()`` runs on another (a viewer);
    ``done`` (an Event the player's callbacks stop on) is set on the way out either way, and the viewer
    must have ended within ``join_s`` seconds."""
    viewer = threading.Thread(target=watch, daemon=True)
    viewer.start()
    try:
        player.restore(str(checkpoint))
        player.run()
    finally:
        done.set()
        viewer.join(join_s)
    assert not viewer.is_alive(), "the viewer thread did not end"
