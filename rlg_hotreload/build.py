"""The public way to build: validate a config, then make a player, train, or play.

Why one module: the CLI, the demo's monitor, the tests and the benchmarks all need the same recipe
(register the task, resolve devices, find the train YAML, build rl-games ``params``, register the player
on a ``Runner``). Copies of it drifted apart; now they all call this. Everything is validated before
anything heavy starts; errors are :class:`~rlg_hotreload.config.ConfigError` (a ``ValueError``) naming the
key at fault, or :class:`~rlg_hotreload.reload.CheckpointError` for a named file that does not fit. Only
the CLI (:mod:`rlg_hotreload.run`) turns them into ``error: ...`` and exit code 2.

Library use::

    from rlg_hotreload import build
    cfg = build.load_config(["task=Pendulum-v1", "checkpoint=latest"], preset="test")
    summary = build.play(cfg)                 # or: player = build.make_player(cfg); player.run()
"""

import copy
import datetime
import logging
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from rlg_hotreload import compare_spec, distributed
from rlg_hotreload import config as cfglib
from rlg_hotreload import params as paramslib
from rlg_hotreload.callbacks import PlayerCallback
from rlg_hotreload.config import ConfigError
from rlg_hotreload.records import Summary

log = logging.getLogger("rlg_hotreload")

ConfigInput = Union[Sequence[str], Mapping[str, Any]]
ParamsEdit = Callable[[Dict[str, Any]], None]

__all__ = ["ConfigError", "load_config", "make_callbacks", "make_params", "make_player", "play", "train"]


def load_config(args_or_dict: ConfigInput = (), preset: Optional[str] = None) -> Dict[str, Any]:
    """The validated config: defaults (:mod:`rlg_hotreload.schema`) <- ``preset`` <- overrides.

    ``args_or_dict`` is either CLI words (``["task=Pendulum-v1", "config=test"]``) or a mapping of keys to
    values (nested ``{"train": {"test": True}}`` or dotted/aliased ``{"checkpoint": "latest"}``).
    ``preset`` is a preset name (``test``, ``test_stream``) or a YAML path (``cfg/test.yaml`` finds the
    shipped preset from any folder).
    """
    cfg_path = None
    args: List[str] = []
    pairs: List[Any] = []
    if preset is not None:
        if preset.endswith(".yaml") and os.path.isfile(cfglib.resolve_cfg_path(preset)):
            cfg_path = preset
        else:
            args.append("config=%s" % preset)
    if isinstance(args_or_dict, Mapping):
        pairs = list(cfglib.flatten(dict(args_or_dict)).items())
    elif isinstance(args_or_dict, str):
        raise ConfigError("overrides: give a list of key=value words or a mapping, not one string")
    else:
        args.extend(args_or_dict)
    return cfglib.load(cfg_path, args, pairs)


def make_params(cfg: Dict[str, Any], edit: Optional[ParamsEdit] = None) -> Dict[str, Any]:
    """Validate ``cfg`` against this machine and return rl-games ``params`` (``cfg`` is not changed).

    Checks, in order: the checkpoint spec, a display for viewers, the task (registered here), the
    task's env config, devices, the train YAML. ``edit(params)`` may then change the result
    (benchmarks resize the network or drop ``algo.player`` to get the stock player).
    """
    cfg = copy.deepcopy(cfg)
    tr = cfg["train"]
    test = tr["test"]
    ranks = _check_launch(cfg)
    if cfg["multi_gpu"] and ranks is not None:
        distributed.apply_ranks(cfg, ranks)
    paramslib.check_checkpoint(tr["checkpoint"], test)
    paramslib.check_remote_checkpoint(tr)  # s3://...: the store answers and the bucket exists
    compare_spec.check(cfg)  # compare=: its slots, before anything heavy
    if not cfg["headless"] and test and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ConfigError(
            "headless=false: no display (DISPLAY is not set); use config=test_stream to watch in a browser"
        )
    if cfg["headless"] or cfg["stream"]["enabled"] or cfg["record"]["enabled"]:
        os.environ.setdefault("MUJOCO_GL", "egl")
    paramslib.register_task(cfg["task"])
    sim = paramslib.check_env_config(cfg["task"], {"sim": cfg["sim"], "sim_device": cfg["sim_device"]})
    paramslib.resolve_devices(cfg)
    if sim is not None:
        cfg["sim"] = sim  # the backend chosen once, here, so the config file and the env agree
    yaml_cfg = cfglib.read_yaml(paramslib.train_config_path(cfg, sim), "train.config")
    params = paramslib.build_params(cfg, yaml_cfg)
    paramslib.check_env_config(cfg["task"], params["config"]["env_config"])
    params["config"]["multi_gpu"] = bool(cfg["multi_gpu"])
    if edit is not None:
        edit(params)
    return params


def _check_launch(cfg: Dict[str, Any]) -> Optional[distributed.Ranks]:
    """This process's ranks under torchrun (None otherwise); LaunchError for a launch that cannot work."""
    ranks = distributed.ranks_from_env()
    if not cfg["multi_gpu"] and ranks is None:
        return None
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    devices = {"rl_device": cfg["rl_device"], "sim_device": cfg["sim_device"]}
    distributed.check_launch(cfg["multi_gpu"], ranks, count, devices, training=not cfg["train"]["test"])
    if cfg["multi_gpu"] and ranks is not None:
        torch.cuda.set_device(ranks.local_rank)  # the env is built before rl-games sets it
    return ranks


def make_callbacks(cfg: Dict[str, Any]) -> List[PlayerCallback]:
    """The callbacks ``cfg`` asks for (``stream.*``, ``record.*``), constructed but not started."""
    st, rec = cfg["stream"], cfg["record"]
    if not (st["enabled"] or rec["enabled"]):
        return []
    try:
        from rlg_hotreload.stream import FrameStreamer, Recorder
    except ImportError as e:
        raise ConfigError(
            "stream.enabled/record.enabled: the streamer is not available (%s); "
            "install with pip install 'rlg-hotreload[stream]'" % e
        ) from e
    out: List[PlayerCallback] = []
    if st["enabled"]:
        host = "0.0.0.0" if st["bindAll"] else st["host"]
        out.append(FrameStreamer(
            host=host, port=st["port"], fps=st["fps"], quality=st["quality"], token=st["token"],
            size=(st["width"], st["height"]), realtime=st["realtime"], ready_file=st["readyFile"],
            control=st["control"], render=st["render"],
        ))  # fmt: skip
    if rec["enabled"]:
        out.append(Recorder(out_dir=rec["dir"], episodes=rec["episodes"], fps=rec["fps"]))
    return out


def make_runner(params: Dict[str, Any], callbacks: Sequence[PlayerCallback] = ()) -> Any:
    """A stock rl-games ``Runner`` loaded with ``params``, our player and observer registered."""
    from rl_games.torch_runner import Runner

    import rlg_hotreload
    from rlg_hotreload.observer import SuccessObserver

    runner = Runner(algo_observer=SuccessObserver())
    rlg_hotreload.register(runner, callbacks=list(callbacks))
    runner.load({"params": params})
    return runner


def make_player(
    cfg: Dict[str, Any], callbacks: Sequence[PlayerCallback] = (), edit: Optional[ParamsEdit] = None
) -> Any:
    """A ready ``HotReloadPlayer`` (the env is built; nothing loaded or started yet).

    Its callbacks are the ones ``cfg`` asks for (streamer, recorder) followed by ``callbacks``; the
    player sets them up when it starts following checkpoints (``restore``/``run``) and closes them when
    ``run`` ends. ``cfg`` is played even if it says ``test: false``.
    """
    if not cfg["train"]["test"]:
        cfg = copy.deepcopy(cfg)
        cfg["train"]["test"] = True
    ours = make_callbacks(cfg)
    # bind now: a bad streamHost or a full port range fails before torch or a simulator starts
    streamers = _reserve_ports(ours)
    try:
        params = make_params(cfg, edit)
        return make_runner(params, ours + list(callbacks)).create_player()
    except BaseException:
        for st in streamers:
            st.close()  # releases the reserved port
        raise


def _reserve_ports(callbacks: Sequence[PlayerCallback]) -> List[Any]:
    """Bind each streamer's port now (served later, when the player starts); the streamers bound."""
    if not callbacks:
        return []
    from rlg_hotreload.stream import FrameStreamer, StreamerError

    done: List[Any] = []
    try:
        for cb in callbacks:
            if isinstance(cb, FrameStreamer):
                cb.reserve()
                done.append(cb)
    except StreamerError as e:
        for st in done:
            st.close()
        raise ConfigError(str(e)) from e
    return done


def play(cfg: Dict[str, Any], callbacks: Sequence[PlayerCallback] = ()) -> Summary:
    """Play ``cfg['train']['checkpoint']`` (file, folder or ``latest``) until ``testGamesNum`` games are
    done (0 = until Ctrl+C / SIGTERM) and return the summary; as rl-games' ``run_play``, in process."""
    player = make_player(cfg, callbacks)
    ran = False
    try:
        if cfg["train"]["checkpoint"]:
            player.restore(cfg["train"]["checkpoint"])
        ran = True
        return player.run()  # type: ignore[no-any-return]
    except _streamer_errors() as e:  # e.g. every port taken: the streamer's message names the key
        raise ConfigError(str(e)) from e
    finally:
        if not ran:  # restore failed: run(), which closes the env and the callbacks, never ran
            player.close_all()


def _streamer_errors() -> Any:
    try:
        from rlg_hotreload.stream import StreamerError
    except ImportError:  # no stream extra: no streamer was built, so none can fail
        return ()
    return (StreamerError,)


def train(cfg: Dict[str, Any]) -> int:
    """Train with rl-games' A2CAgent into ``<trainDir>/<task>_<dd-HH-MM-SS>/nn``; ``latest_train`` points
    at the new run (so ``checkpoint=latest`` follows it). Returns 0 when training ends."""
    if cfg["train"]["test"]:
        raise ConfigError("train.test=true: train() trains; use play() or make_player() to play")
    params = make_params(cfg)
    train_dir = params["config"]["train_dir"]  # ranks other than 0 write under a hidden folder
    name = params["config"]["name"] + datetime.datetime.now().strftime("_%d-%H-%M-%S")
    params["config"]["full_experiment_name"] = name
    ranks = distributed.ranks_from_env() if cfg["multi_gpu"] else None
    if ranks is None or ranks.is_main:
        _link_latest(train_dir, name)
    where = "" if ranks is None else " (rank %d of %d, %s)" % (ranks.rank, ranks.world_size, ranks.device)
    log.info("Training %s -> %s%s", cfg["task"], os.path.join(train_dir, name, "nn"), where)
    try:
        make_runner(params).run({"train": True, "play": False, "checkpoint": cfg["train"]["checkpoint"] or None})
    finally:
        if ranks is not None:
            distributed.finish()
    return 0


def _link_latest(train_dir: str, experiment: str) -> None:
    """Point ``<train_dir>/latest_train`` at the new run, atomically (symlink + rename)."""
    os.makedirs(os.path.join(train_dir, experiment), exist_ok=True)
    link = os.path.join(train_dir, "latest_train")
    tmp = link + ".%d.tmp" % os.getpid()
    os.symlink(experiment, tmp)
    os.replace(tmp, link)
