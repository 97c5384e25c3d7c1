"""Packaging lives in setup.cfg; this file only ships the cfg/ presets inside the package.

Why: an editable install (`pip install -e .`) reads presets from the checkout's cfg/, but a regular
install has no checkout; the presets are then read from rlg_hotreload/presets/ in site-packages.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithPresets(build_py):
    def run(self) -> None:
        super().run()
        here = os.path.dirname(os.path.abspath(__file__))
        shutil.copytree(
            os.path.join(here, "cfg"),
            os.path.join(self.build_lib, "rlg_hotreload", "presets"),
            dirs_exist_ok=True,
        )


setup(cmdclass={"build_py": BuildPyWithPresets})
