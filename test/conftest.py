"""Shared test setup: DDS on loopback and a ROS domain of this run's own."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Keep DDS on loopback and give this run its own domain so parallel runs do not hear each
# other. Child processes started by the tests inherit both.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)
os.environ.setdefault('MPLBACKEND', 'Agg')


@pytest.fixture
def ros_context():
    """An rclpy context of the test's own, shut down afterwards."""
    import rclpy
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


def spawn(cmd, **kwargs):
    """Start a node executable as a separate process with the test's environment."""
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ), **kwargs)
