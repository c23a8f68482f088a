"""The build packages the suite's own files (tests, workflows, profiles, locustfiles) inside the wheel, under
comfycheck/suite/, so an installed comfycheck (pipx, uv tool, a wheel) has them; the repository keeps them in its
top-level folders, where an editable install (./run) finds them (comfycheck.config.paths). Everything else is in
pyproject.toml."""
from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SUITE = ("tests", "fixtures", "profiles", "loadtests")  # the repository's folders a wheel carries
LEFT_OUT = shutil.ignore_patterns("__pycache__", "*.pyc", "baselines-diff*")


class BuildWithSuite(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's folders themselves
        root = Path(__file__).resolve().parent
        dest = Path(self.build_lib) / "comfycheck" / "suite"
        for folder in SUITE:
            shutil.rmtree(dest / folder, ignore_errors=True)
            shutil.copytree(root / folder, dest / folder, ignore=LEFT_OUT)
        (dest / "pytest.ini").write_text(_pytest_ini(root / "pyproject.toml"), encoding="utf-8")


def _pytest_ini(pyproject: Path) -> str:
    """pyproject.toml's [tool.pytest.ini_options] as the installed suite's pytest.ini: its rootdir, so the test ids
    (tests/...) and the options are those of the checkout."""
    options = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    lines = ["# written by comfycheck's build from its pyproject.toml", "[pytest]"]
    for key, value in options.items():
        if isinstance(value, list):
            lines.append(f"{key} =" + "".join(f"\n    {v}" for v in value))
        else:
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


setup(cmdclass={"build_py": BuildWithSuite})
