"""Tests with the upstream ROS 2 tools: launch_pytest, launch, launch_ros and the ros2 CLI.

They run in a pytest of their own (launch_pytest needs pytest < 8.4; ROS distributions ship
pytest 7): ``make test`` runs them as a second invocation with the tools from a ROS install, or
from ``../shared/ros2-tools`` installed into ``.ros2-tools`` when ``AURA_ROS2_TOOLS`` points at
that folder (``.ci/run`` sets it). Without the tools they are skipped with one line saying what
to install; under CI (``CI=true``) a missing tool is an error, not a skip.
"""
import os
import shutil

import pytest
from probe import HOW


def _tools_missing():
    try:
        import launch_pytest  # noqa: F401
        import launch_ros  # noqa: F401
        import ros2cli  # noqa: F401

        import launch  # noqa: F401
    except ImportError as exc:
        return f'{HOW} ({exc})'
    if shutil.which('ros2') is None:
        return f'{HOW} (no `ros2` command on PATH)'
    return None


MISSING = _tools_missing()


def pytest_collection_modifyitems(config, items):
    """Under CI the tools must be there: their absence fails the run (each module skips
    itself with ``HOW`` elsewhere, as its first import)."""
    if MISSING is not None and os.environ.get('CI') == 'true':
        raise pytest.UsageError(f'CI: {MISSING}')

