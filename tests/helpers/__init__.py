"""Test helpers, imported as ``helpers.<module>``: pytest puts ``tests/`` on ``sys.path`` (rootdir conftest,
default ``prepend`` import mode), so no test touches ``sys.path`` itself.

- :mod:`helpers.procs` — the real CLI in a subprocess, waited on by its log lines; free ports
- :mod:`helpers.ckpt_factory` — checkpoint files for fault tests, made from a real one
- :mod:`helpers.gym_driver` — a stand-in for the player's hook calls, stepping a real gymnasium env
- :mod:`helpers.players` — real players and runs through ``rlg_hotreload.build``
- :mod:`helpers.video` — decode an mp4 for real
"""
