"""``python -m rlg_hotreload.run --cfg cfg/<preset>.yaml [key=value ...]``: train or watch, via rl-games' Runner.

Why a thin CLI over the stock Runner: users keep their rl-games YAMLs; this only merges our presets and
overrides into them (seed-workflow spellings included), registers tasks and the player, and runs.
Every value is validated before the simulator starts; bad input exits with code 2 and a one-line error.
"""

import argparse
import copy
import datetime
import logging
import os
import re
import sys
from typing import Any, Dict, List, Optional, Sequence

from rlg_hotreload import config as cfglib
from rlg_hotreload.config import ConfigError

log = logging.getLogger("rlg_hotreload")


def _register_task(task: str) -> None:
    """Make ``task`` known to rl-games: our tasks first, then any gymnasium id."""
    from rl_games.common import env_configurations

    try:
        import isaacgym_tasks
    except ImportError:
        isaacgym_tasks = None  # type: ignore[assignment]
    if isaacgym_tasks is not None:
        isaacgym_tasks.register()
    from rlg_hotreload import envs

    if task in env_configurations.configurations and not envs.is_gym_id(task):
        return
    if envs.is_gym_id(task):
        envs.register_gym_task(task)
        if not envs.has_box_actions(task):
            raise ConfigError(
                "task=%s: has discrete actions; allowed: tasks with continuous (Box) actions" % task
            )
        return
    known = sorted(k for k in env_configurations.configurations if k[0].isupper())
    hint = cfglib.suggest(task, known)
    raise ConfigError(
        "task=%s: unknown task%s; allowed: %s, or any gymnasium id (e.g. Pendulum-v1)"
        % (task, hint, ", ".join(known) or "none registered")
    )


def _train_config_path(cfg: Dict[str, Any], sim: Optional[str] = None) -> str:
    """The rl-games YAML: ``train.config``, else ``cfg/train/<task>PPO_<sim>.yaml`` (a backend's own
    hyperparameters, e.g. 4096 envs on a GPU), else ``cfg/train/<task>PPO.yaml``."""
    explicit = cfg["train"]["config"]
    if explicit:
        if not os.path.isfile(explicit):
            raise ConfigError("train.config=%s: no such file" % explicit)
        return explicit
    task = cfg["task"]
    names = [task + "PPO.yaml", re.sub(r"-v\d+$", "", task) + "PPO.yaml"]
    if sim:
        names.insert(0, "%sPPO_%s.yaml" % (task, sim))
    for name in names:
        path = cfglib.find_cfg_file(os.path.join("train", name))
        if path:
            return path
    from rlg_hotreload import envs

    if envs.is_gym_id(task):
        path = cfglib.find_cfg_file(os.path.join("train", "GymPPO.yaml"))
        if path:
            return path
    raise ConfigError(
        "train.config: no rl-games config for task=%s (looked for cfg/train/%s); give train.config=PATH"
        % (task, names[-1])
    )


def _check_checkpoint(spec: str, test: bool) -> None:
    if test and not spec:
        raise ConfigError(
            "train.checkpoint: required for testing; allowed: a .pth file, an experiment folder, latest"
        )
    if not spec or spec == "latest":
        return
    if test:
        parent = os.path.dirname(spec) or "."
        if not (os.path.exists(spec) or (spec.endswith(".pth") and os.path.isdir(parent))):
            raise ConfigError("train.checkpoint=%s: no such file or folder (or use checkpoint=latest)" % spec)
    elif not os.path.isfile(spec):
        raise ConfigError("train.checkpoint=%s: no such file to resume training from" % spec)


def _check_env_config(task: str, env_config: Dict[str, Any]) -> Optional[str]:
    """Our tasks validate their env_config up front (unknown key, bad sim, missing GPU or warp, viewer
    without display); returns the BlindGrasping backend that will run (None for other tasks)."""
    try:
        import isaacgym_tasks
    except ImportError:
        return None
    if task != isaacgym_tasks.TASK_NAME:
        return None
    try:
        return isaacgym_tasks.check_config(**{k: v for k, v in env_config.items() if k != "seed"})
    except ValueError as e:
        raise ConfigError(str(e)) from e


def resolve_devices(cfg: Dict[str, Any]) -> None:
    """Replace ``auto``/``cuda`` in ``rl_device``/``sim_device`` by concrete devices; ConfigError for a
    malformed device or one this machine lacks (``rl_device=cuda:3`` with one GPU)."""
    from isaacgym_tasks.config import resolve_device

    for key in ("rl_device", "sim_device"):
        try:
            cfg[key] = resolve_device(cfg[key], key)
        except ValueError as e:
            raise ConfigError(str(e)) from e


def _safe_name(task: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", task)


def build_params(cfg: Dict[str, Any], yaml_cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The rl-games ``params`` for this run: the task's YAML with our keys applied."""
    if "params" not in yaml_cfg or "config" not in yaml_cfg["params"]:
        raise ConfigError("train.config: not an rl-games YAML (needs params.config)")
    params = copy.deepcopy(yaml_cfg["params"])
    cfg = dict(cfg)
    resolve_devices(cfg)  # concrete devices for rl-games (idempotent; callers may have done it)
    conf = params["config"]
    tr = cfg["train"]
    test = tr["test"]
    params["seed"] = cfg["seed"]
    conf["device"] = conf["device_name"] = cfg["rl_device"]  # trainer and player read one each
    conf["env_name"] = cfg["task"]
    conf["name"] = _safe_name(cfg["task"])
    conf["train_dir"] = tr["trainDir"]
    if cfg["numEnvs"] is not None:
        conf["num_actors"] = cfg["numEnvs"]
    elif test:
        conf["num_actors"] = 1
    env_config = dict(conf.get("env_config") or {})
    env_config["seed"] = cfg["seed"]
    watching = cfg["stream"]["enabled"] or cfg["record"]["enabled"]
    from rlg_hotreload import envs

    if envs.is_gym_id(cfg["task"]):
        env_config["render_mode"] = "rgb_array" if watching else (None if cfg["headless"] else "human")
    else:
        env_config["sim"] = cfg["sim"]
        env_config["rl_device"] = cfg["rl_device"]
        env_config["sim_device"] = cfg["sim_device"]
        env_config["graphics_device_id"] = cfg["graphics_device_id"]
        env_config.setdefault("render_width", cfg["stream"]["width"])
        env_config.setdefault("render_height", cfg["stream"]["height"])
        env_config.setdefault("headless", cfg["headless"])
    conf["env_config"] = env_config
    if tr["maxEpochs"] is not None:
        conf["max_epochs"] = tr["maxEpochs"]
    if test:
        # A monitor shares the machine with training: with rl-games' default (min(4, cores) threads) a
        # busy neighbour stalls every OpenMP region of the policy (measured: 1.2 ms steps became 15 ms).
        params.setdefault("torch_threads", 1)
        params["algo"]["player"] = "hot_reload"
        player = dict(conf.get("player") or {})
        player.update(
            games_num=tr["testGamesNum"],
            deterministic=tr["deterministic"],
            render=False,  # viewers draw inside env.step (gymnasium human mode, MuJoCo/Isaac Gym viewers)
            reload_interval=tr["reloadInterval"],
            swap_at=tr["swapAt"],
            load_env_state=tr["loadEnvState"],
            train_dir=tr["trainDir"],
            max_checkpoint_mb=tr["maxCheckpointMB"],
            print_stats=tr["printStats"],
            use_vecenv=True,
        )
        conf["player"] = player
    return params


def _link_latest(train_dir: str, experiment: str) -> None:
    """Point ``<train_dir>/latest_train`` at the new run, atomically (symlink + rename)."""
    os.makedirs(os.path.join(train_dir, experiment), exist_ok=True)
    link = os.path.join(train_dir, "latest_train")
    tmp = link + ".%d.tmp" % os.getpid()
    os.symlink(experiment, tmp)
    os.replace(tmp, link)


def _callbacks(cfg: Dict[str, Any]) -> List[Any]:
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
    out: List[Any] = []
    if st["enabled"]:
        host = "0.0.0.0" if st["bindAll"] else st["host"]
        streamer = FrameStreamer(
            host=host,
            port=st["port"],
            fps=st["fps"],
            quality=st["quality"],
            token=st["token"],
            size=(st["width"], st["height"]),
            realtime=st["realtime"],
        )
        out.append(streamer)
    if rec["enabled"]:
        out.append(Recorder(out_dir=rec["dir"], episodes=rec["episodes"], fps=rec["fps"]))
    return out


_played = False  # set once a play session has run to its end (see cli())


def run(cfg: Dict[str, Any]) -> int:
    """Validate everything, then train or play. Returns the process exit code."""
    tr = cfg["train"]
    test = tr["test"]
    _check_checkpoint(tr["checkpoint"], test)
    if not cfg["headless"] and test and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ConfigError(
            "headless=false: no display (DISPLAY is not set); use config=test_stream to watch in a browser"
        )
    if cfg["headless"] or cfg["stream"]["enabled"] or cfg["record"]["enabled"]:
        os.environ.setdefault("MUJOCO_GL", "egl")
    _register_task(cfg["task"])
    sim = _check_env_config(cfg["task"], {"sim": cfg["sim"], "sim_device": cfg["sim_device"]})
    resolve_devices(cfg)
    if sim is not None:
        cfg["sim"] = sim  # the backend chosen once, here, so the config file and the env agree
    yaml_path = _train_config_path(cfg, sim)
    yaml_cfg = cfglib.read_yaml(yaml_path, "train.config")
    params = build_params(cfg, yaml_cfg)
    _check_env_config(cfg["task"], params["config"]["env_config"])
    callbacks = _callbacks(cfg) if test else []

    from rl_games.torch_runner import Runner

    import rlg_hotreload
    from rlg_hotreload.reload import CheckpointError

    if not test:
        name = params["config"]["name"] + datetime.datetime.now().strftime("_%d-%H-%M-%S")
        params["config"]["full_experiment_name"] = name
        _link_latest(tr["trainDir"], name)
        log.info("Training %s -> %s", cfg["task"], os.path.join(tr["trainDir"], name, "nn"))
    if callbacks:
        from rlg_hotreload.stream import StreamerError

        try:
            for cb in callbacks:
                start = getattr(cb, "start", None)
                if start is not None:
                    start()
        except StreamerError as e:  # e.g. all ports taken: an error, never silence
            raise ConfigError(str(e)) from e
    try:
        from rlg_hotreload.observer import SuccessObserver

        runner = Runner(algo_observer=SuccessObserver())
        rlg_hotreload.register(runner, callbacks=callbacks)
        runner.load({"params": params})
        runner.run({"train": not test, "play": test, "checkpoint": tr["checkpoint"] or None})
    except KeyboardInterrupt:
        log.info("Interrupted.")
    except CheckpointError as e:  # the named file does not fit the network: nothing to wait for
        raise ConfigError("train.checkpoint=%s: %s" % (tr["checkpoint"], e)) from e
    finally:
        for cb in callbacks:
            stop = getattr(cb, "stop", None)
            if stop is not None:
                stop()
    global _played
    _played = test
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rlg_hotreload.run",
        description="Train with rl-games, or play the newest checkpoint forever with hot reload.",
        epilog="Keys (all in cfg/base.yaml; README: config reference): task, sim (auto|mujoco|mjwarp|isaacgym), "
        "rl_device and sim_device (auto|cpu|cuda:N), graphics_device_id, numEnvs, seed, headless, checkpoint, "
        "reloadInterval, testGamesNum, maxEpochs, stream.*, record.*. "
        "Examples: --cfg cfg/train_headless.yaml task=Pendulum-v1 | "
        "config=test_stream testGamesNum=0 checkpoint=latest | config=train_headless sim=mjwarp rl_device=cuda:0",
    )
    parser.add_argument("--cfg", help="preset YAML (cfg/test.yaml, cfg/test_stream.yaml, ...)")
    parser.add_argument("overrides", nargs="*", help="key=value (see README: config reference)")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[rlg_hotreload] %(message)s", stream=sys.stdout)
    try:
        cfg = cfglib.load(ns.cfg, ns.overrides)
        return run(cfg)
    except ConfigError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2


def cli() -> None:
    """Console entry point. After a play session everything is already closed (env, streamer, loader
    child, recordings finalized in ``on_stop``), so skip the interpreter's teardown of torch, MuJoCo and
    EGL, which alone takes ~1.2 s: Ctrl+C must end the monitor within 2 s. Training exits normally
    (rl-games' summary writers flush at exit)."""
    code = main()
    if _played:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    cli()
