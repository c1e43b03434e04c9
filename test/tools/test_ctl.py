"""python -m aura_ros.tools.ctl: the README's ros2 CLI calls for pip-only installs, against a
running policy_node process."""
import signal
import subprocess
import sys

import pytest

from aura_ros.tools.processes import executable
from conftest import spawn, write_params

pytestmark = pytest.mark.ros


def ctl(*args):
    proc = subprocess.run([sys.executable, '-m', 'aura_ros.tools.ctl', '--timeout', '60', *args],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


@pytest.mark.slow
def test_arm_param_lifecycle_and_clear_failures(tiny_models, tmp_path):
    params = write_params(tmp_path / 'p.yaml', dict(tiny_models['pi0_block'],
                                                    model_path=str(tiny_models['root'] / 'pi0')),
                          tiny_models['memory_pi0'], extra_policy={'start_armed': False})
    proc = spawn([executable('policy_node'), '--ros-args', '-r', '__ns:=/left',
                  '--params-file', str(params)])
    try:
        status, out = ctl('--ns', 'left', 'lifecycle', 'get')
        assert (status, out) == (0, 'active'), out
        assert ctl('--ns', 'left', 'arm') == (0, 'armed')
        assert ctl('--ns', 'left', 'param', 'set', 'memory.gate_threshold', '0.9') == (0, 'set')
        assert ctl('--ns', 'left', 'param', 'get', 'memory.gate_threshold') == (
            0, 'memory.gate_threshold: 0.9')
        status, out = ctl('--ns', 'left', 'param', 'set', 'memory.gate_threshold', '1.5')
        assert status == 1 and 'refused' in out and '0.99' in out
        status, out = ctl('--ns', 'left', 'report')
        assert status == 0 and '"armed": true' in out
        assert ctl('--ns', 'left', 'lifecycle', 'set', 'deactivate')[1] == \
            'active -> deactivate: done'
        assert ctl('--ns', 'left', 'lifecycle', 'get') == (0, 'inactive')
        assert ctl('--ns', 'left', 'lifecycle', 'set', 'shutdown') == (
            0, 'inactive -> shutdown: done')
        assert proc.wait(timeout=20) == 0                # the process ended by itself
        status, out = subprocess.run(
            [sys.executable, '-m', 'aura_ros.tools.ctl', '--timeout', '1', 'arm'],
            capture_output=True, text=True).returncode, ''
        assert status == 1
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=20)
