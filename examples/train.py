"""An IsaacGymEnvs-style ``train.py`` with hot reload: one script trains, or (``test=True``) plays.

    python examples/train.py task=BlindGrasping max_iterations=300            # terminal 1: train
    python examples/train.py task=BlindGrasping test=True checkpoint=latest   # terminal 2: watch it improve

Shaped like IsaacGymEnvs' ``train.py`` (``key=value`` overrides, the task's rl-games YAML from
``cfg/train/<task>PPO.yaml``, an rl-games ``Runner``); the hot-reload lines are marked ``# hot reload``:
register the player on the Runner, and select it in the rl-games config (``params.algo.player:
hot_reload``, which your YAML can say instead). With ``checkpoint`` a run folder or ``latest`` (the
newest run in ``train_dir``), the player follows it and swaps in every new checkpoint; Ctrl+C ends it.
"""

import os
import sys
from dataclasses import dataclass
from typing import List, Optional

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

import isaacgym_tasks
import rlg_hotreload  # hot reload

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class TrainConfig:
    task: str = "BlindGrasping"
    test: bool = False
    checkpoint: str = ""  # test: a .pth file, a run folder or latest; train: a .pth to resume from
    num_envs: Optional[int] = None  # None: the YAML's num_actors to train, 1 to play
    max_iterations: Optional[int] = None  # None: the YAML's max_epochs
    seed: int = 42
    train_dir: str = "runs"
    reload_interval: float = 5.0  # hot reload: seconds between checks for a newer checkpoint
    games_num: int = 0  # hot reload: games to play; 0 = until Ctrl+C


def fail(message: str) -> None:
    print("error: " + message, file=sys.stderr)
    sys.exit(2)


def parse(argv: List[str]) -> TrainConfig:
    """``key=value`` words over the defaults; a bad one is one line and exit code 2."""
    for word in argv:
        if "=" not in word:
            fail("%r: overrides are key=value (e.g. test=True)" % word)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.from_dotlist(argv))
    except ConfigKeyError as e:
        fail("unknown key %r; allowed: %s" % (e.full_key, ", ".join(TrainConfig.__annotations__)))
    except OmegaConfBaseException as e:
        fail("%s: %s" % (getattr(e, "full_key", "") or "config", str(e).splitlines()[0]))
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def main() -> None:
    cfg = parse(sys.argv[1:])
    yaml_path = os.path.join(ROOT, "cfg", "train", "%sPPO.yaml" % cfg.task)
    if cfg.task != isaacgym_tasks.TASK_NAME:
        fail("task=%s: allowed: %s (this example's task)" % (cfg.task, isaacgym_tasks.TASK_NAME))
    if cfg.test and not cfg.checkpoint:
        fail("checkpoint: required with test=True; allowed: a .pth file, a run folder, latest")
    if not cfg.test and cfg.checkpoint and not os.path.isfile(cfg.checkpoint):
        fail("checkpoint=%s: no such file to resume training from" % cfg.checkpoint)
    with open(yaml_path) as f:
        rlg_config_dict = yaml.safe_load(f)
    params = rlg_config_dict["params"]
    params["seed"] = cfg.seed
    conf = params["config"]
    conf["train_dir"] = cfg.train_dir
    conf["num_actors"] = cfg.num_envs or (1 if cfg.test else conf["num_actors"])
    if cfg.max_iterations is not None:
        conf["max_epochs"] = cfg.max_iterations
    if cfg.test:
        params["algo"]["player"] = "hot_reload"  # hot reload (or `player: hot_reload` in the YAML)
        conf["player"].update(games_num=cfg.games_num, reload_interval=cfg.reload_interval,  # hot reload
                              train_dir=cfg.train_dir)  # fmt: skip

    isaacgym_tasks.register()  # the task's env in rl-games' registries (IsaacGymEnvs: "rlgpu")
    from rl_games.torch_runner import Runner

    runner = Runner()
    rlg_hotreload.register(runner)  # hot reload
    runner.load(rlg_config_dict)
    runner.reset()
    runner.run({"train": not cfg.test, "play": cfg.test, "checkpoint": cfg.checkpoint or None, "sigma": None})


if __name__ == "__main__":
    main()
