"""rlg-hotreload: watch an rl-games policy improve while it trains.

Select the player with one line in a stock rl-games YAML::

    params:
      algo:
        name: a2c_continuous
        player: hot_reload      # <- this line

and one call before ``runner.run(...)``::

    from rl_games.torch_runner import Runner
    import rlg_hotreload
    runner = Runner()
    rlg_hotreload.register(runner)

or build everything from our config (validated first) with :mod:`rlg_hotreload.build`::

    from rlg_hotreload import build
    summary = build.play(build.load_config(["task=Pendulum-v1", "checkpoint=latest"], preset="test"))
"""

from typing import Any, Dict, Optional, Sequence

from rlg_hotreload.callbacks import CallbackList, PlayerCallback, PlayerView
from rlg_hotreload.records import CheckpointInfo, EpisodeRecord, Summary

__version__ = "0.1.0"
PLAYER_NAME = "hot_reload"

__all__ = [
    "CallbackList",
    "CheckpointInfo",
    "EpisodeRecord",
    "HotReloadPlayer",
    "PlayerCallback",
    "PlayerView",
    "Summary",
    "register",
]


def __getattr__(name: str) -> Any:
    # Lazy: importing the package must not import torch/rl-games (the CLI validates config first).
    if name == "HotReloadPlayer":
        from rlg_hotreload.player import HotReloadPlayer

        return HotReloadPlayer
    raise AttributeError(name)


def register(runner: Any, callbacks: Optional[Sequence[PlayerCallback]] = None) -> None:
    """Make ``runner`` build HotReloadPlayer when its YAML says ``algo.player: hot_reload``.

    Replaces the ``a2c_continuous`` entry of this runner instance's player factory only (rl-games
    itself is not modified); YAMLs without the line get the stock player as before.
    """
    from rl_games.algos_torch.players import PpoPlayerContinuous

    from rlg_hotreload.player import HotReloadPlayer

    def build(**kwargs: Any) -> Any:
        params: Dict[str, Any] = kwargs["params"]
        if params.get("algo", {}).get("player") == PLAYER_NAME:
            if (params.get("config", {}).get("player") or {}).get("compare"):
                from rlg_hotreload.compare import ComparePlayer

                return ComparePlayer(params, callbacks=callbacks or ())
            return HotReloadPlayer(params, callbacks=callbacks or ())
        return PpoPlayerContinuous(**kwargs)

    runner.player_factory.register_builder("a2c_continuous", build)
