"""From a validated CLI config to rl-games ``params``: the task registered, its train YAML found, our keys applied.

Why its own module: these steps are the middle of every build (CLI, tests, benchmarks, the demo's
monitor) and each raises ConfigError naming the key at fault, before any simulator starts.
:mod:`rlg_hotreload.build` is the only caller that strings them together.
"""

import copy
import os
import re
from typing import Any, Dict, Optional

from rlg_hotreload import config as cfglib
from rlg_hotreload.config import ConfigError


def register_task(task: str) -> None:
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


def train_config_path(cfg: Dict[str, Any], sim: Optional[str] = None) -> str:
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


def check_checkpoint(spec: str, test: bool) -> None:
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


def check_env_config(task: str, env_config: Dict[str, Any]) -> Optional[str]:
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


def safe_name(task: str) -> str:
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
    conf["name"] = safe_name(cfg["task"])
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
            watch=tr["watch"],
            swap_at=tr["swapAt"],
            load_env_state=tr["loadEnvState"],
            train_dir=tr["trainDir"],
            checkpoint=tr["checkpoint"],
            max_checkpoint_mb=tr["maxCheckpointMB"],
            print_stats=tr["printStats"],
            use_vecenv=True,
        )
        conf["player"] = player
    return params
