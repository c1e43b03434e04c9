"""status_publisher -> gate_monitor as processes over DDS (the status_demo launch graph), with
the shipped parameter file, in a namespace; a refused parameter exits with the reason."""
import subprocess

import pytest

from aura_ros.paths import package_share
from aura_ros.tools.processes import executable
from conftest import spawn

pytestmark = pytest.mark.ros


def test_monitor_prints_every_event_of_the_scripted_source_in_a_namespace():
    params = f"{package_share('aura_ros')}/config/status_publisher.yaml"   # count 30, w 5
    ns = ['-r', '__ns:=/arm_a']
    monitor = spawn([executable('gate_monitor'), '--ros-args', *ns, '-p', 'max_events:=30',
                     '-p', 'idle_timeout:=60.0'])
    source = spawn([executable('status_publisher'), '--ros-args', *ns,
                    '--params-file', params])
    try:
        out = monitor.communicate(timeout=90)[0]
        source.communicate(timeout=30)
    finally:
        for p in (monitor, source):
            if p.poll() is None:
                p.kill()
    events = [line for line in out.splitlines() if line.startswith('gate_event')]
    assert monitor.returncode == 0 and len(events) == 30, out[-2000:]
    assert sum('wrote=1' in line for line in events) == 6          # every 5th of 30


def test_out_of_range_parameter_is_refused_with_the_reason():
    result = subprocess.run([executable('status_publisher'), '--ros-args', '-p', 'count:=-1'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and 'count' in result.stderr, result.stderr
