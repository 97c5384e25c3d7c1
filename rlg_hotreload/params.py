"""From a validated CLI config to rl-games ``params``: the task registered, its train YAML found, our keys applied.

Why its own module: these steps are the middle of every build (CLI, tests, benchmarks, the demo's
monitor) and each raises ConfigError naming the key at fault, before any simulator starts.
:mod:`rlg_hotreload.build` is the only caller that strings them together.
"""

import copy
import difflib
import logging
import os
import re
from typing import Any, Dict, List, Optional, Sequence

from rlg_hotreload import compare_spec
from rlg_hotreload import config as cfglib
from rlg_hotreload.config import ConfigError

log = logging.getLogger("rlg_hotreload")


# rl-games' own vecenvs: each needs a package that is not our dependency (ray, brax, envpool, cule,
# ManiSkill) or a simulator long gone (Flex, "ISAAC"). Tasks registered on them are not offered.
RLGAMES_VECENVS = ("RAY", "BRAX", "ENVPOOL", "CULE", "MANISKILL", "ISAAC")


def runnable_tasks() -> List[str]:
    """Registered tasks this machine can run, gymnasium ids aside (any continuous one runs): those not on
    one of rl-games' own vecenvs (BlindGrasping, an IsaacGymEnvs ``rlgpu`` task, your own)."""
    from rl_games.common import env_configurations, vecenv

    from rlg_hotreload import envs

    return sorted(
        name for name, entry in env_configurations.configurations.items()
        if entry.get("vecenv_type") in vecenv.vecenv_config and entry.get("vecenv_type") not in RLGAMES_VECENVS
        and not envs.is_gym_id(name)
    )  # fmt: skip


def register_task(task: str) -> None:
    """Make ``task`` known to rl-games: our tasks first, then any gymnasium id with continuous actions."""
    try:
        import isaacgym_tasks
    except ImportError:
        isaacgym_tasks = None  # type: ignore[assignment]
    if isaacgym_tasks is not None:
        isaacgym_tasks.register()
    from rlg_hotreload import envs

    if envs.is_gym_id(task):
        envs.register_gym_task(task)
        import gymnasium

        try:
            continuous = envs.has_box_actions(task)
        except (ImportError, gymnasium.error.Error) as e:  # e.g. no Box2D: the message says what to install
            raise ConfigError(
                "task=%s: cannot be built here: %s" % (task, str(e).strip().splitlines()[0])
            ) from e
        if not continuous:
            raise ConfigError(
                "task=%s: has discrete actions; allowed: tasks with continuous (Box) actions" % task
            )
        return
    if task in runnable_tasks():
        return
    from rl_games.common import env_configurations

    entry = env_configurations.configurations.get(task)
    why = "unknown task"
    if entry is not None:
        kind = entry.get("vecenv_type")
        why = "rl-games registers it on its %s vecenv, which this plugin does not run" % kind
    known = runnable_tasks()
    raise ConfigError(
        "task=%s: %s; allowed: %s, or any gymnasium id with continuous actions (e.g. Pendulum-v1)%s"
        % (task, why, ", ".join(known) or "none registered", suggest_task(task, known))
    )


def suggest_task(task: str, registered: Sequence[str]) -> str:
    """A "did you mean" among tasks that can run here: ``registered`` ones and continuous gymnasium ids."""
    import gymnasium

    for name in difflib.get_close_matches(task, list(registered) + list(gymnasium.registry), n=5, cutoff=0.6):
        if name in registered or _continuous_gym_id(name):
            return "; did you mean '%s'?" % name
    return ""


def _continuous_gym_id(name: str) -> bool:
    """True if gymnasium id ``name`` builds here and has Box actions (a missing extra, e.g. box2d, is no)."""
    from rlg_hotreload import envs

    try:
        return envs.has_box_actions(name)
    except Exception as e:  # noqa: BLE001 - any failure to build it means "not runnable here"
        log.debug("task suggestion %s skipped: cannot build it here (%s)", name, e)
        return False


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
    """A named file must exist now; a folder or ``latest`` may still be waiting for its first checkpoint."""
    if test and not spec:
        raise ConfigError(
            "train.checkpoint: required for testing; allowed: a .pth file, an experiment folder, latest"
        )
    if not spec or spec == "latest" or (test and _is_url(spec)):
        return  # a URL: check_remote_checkpoint
    if test:
        if not os.path.exists(spec):
            parent = os.path.dirname(spec) or "."
            what = "no such file in %s" % parent if os.path.isdir(parent) else "no such file or folder"
            raise ConfigError(
                "train.checkpoint=%s: %s (give an existing .pth, a run folder, or latest)" % (spec, what)
            )
    elif not os.path.isfile(spec):
        raise ConfigError("train.checkpoint=%s: no such file to resume training from" % spec)


def _is_url(spec: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", spec or "") is not None


def check_remote_checkpoint(tr: Dict[str, Any]) -> None:
    """A URL checkpoint (or ``latest`` in a URL ``trainDir``) when playing: the fsspec protocol is installed,
    the store answers with these credentials, the bucket exists (README: Checkpoints in object storage)."""
    spec = tr["checkpoint"]
    if not tr["test"] or not (_is_url(spec) or (spec == "latest" and _is_url(tr["trainDir"]))):
        return
    from rlg_hotreload.reload import check_remote

    try:
        check_remote(spec, tr["trainDir"], tr["storageOptions"], tr["watch"])
    except ValueError as e:
        raise ConfigError(str(e)) from e


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


def fit_minibatch(conf: Dict[str, Any], yaml_actors: Any) -> None:
    """Keep rl-games' ``batch_size % minibatch_size == 0`` when ``numEnvs`` changes the batch.

    A fixed ``minibatch_size`` written for the YAML's ``num_actors`` (1024 for 64 envs) does not divide
    the batch of ``numEnvs=16``, and rl-games stops with a traceback. The YAML's number of minibatches per
    epoch is kept instead (``minibatch_size_per_env`` already scales; nothing to do then); a batch it
    does not divide becomes one minibatch. Either way one line says what changed.
    """
    mb, horizon = conf.get("minibatch_size"), conf.get("horizon_length")
    if not isinstance(mb, int) or not isinstance(horizon, int) or mb <= 0 or horizon <= 0:
        return
    batch = horizon * int(conf["num_actors"])
    if batch % mb == 0 and mb <= batch:
        return
    per_epoch = max(1, horizon * int(yaml_actors or conf["num_actors"]) // mb)
    new = batch // per_epoch if batch % per_epoch == 0 else batch
    conf["minibatch_size"] = new
    log.info("numEnvs=%d: minibatch_size %d -> %d (%d per epoch, as the train config has at %s envs)",
             conf["num_actors"], mb, new, batch // new, yaml_actors)  # fmt: skip


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
    yaml_actors = conf.get("num_actors")
    if cfg["numEnvs"] is not None:
        conf["num_actors"] = cfg["numEnvs"]
        if not test:
            fit_minibatch(conf, yaml_actors)
    elif test:
        conf["num_actors"] = 1
    slots = compare_spec.check(cfg)
    if slots:  # numEnvs envs per slot, one batched env
        conf["num_actors"] *= len(slots)
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
        cols = compare_spec.grid(len(slots)) if slots else 1  # tiles of a compare view share the frame
        env_config.setdefault("render_width", max(16, cfg["stream"]["width"] // cols))
        env_config.setdefault("render_height", max(16, cfg["stream"]["height"] // cols))
        if slots:
            env_config["reset_groups"] = len(slots)
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
            storage_options=tr["storageOptions"],
            print_stats=tr["printStats"],
            use_vecenv=True,
        )
        if slots:
            player.update(compare=[sl.to_dict() for sl in slots], best_name=conf["name"] + ".pth")
        conf["player"] = player
    return params
