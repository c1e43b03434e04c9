"""The installed package: ament index, executables, messages, colcon build."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ament_index_python.packages import get_package_prefix, get_package_share_directory

from conftest import REPO

EXECUTABLES = [line.split('=')[0] for line in
               (REPO / 'cmake' / 'executables.txt').read_text().split() if '=' in line]


def test_share_directory_holds_launch_and_config():
    share = Path(get_package_share_directory('aura_ros'))
    assert (share / 'launch').is_dir() and any((share / 'launch').glob('*.launch.py'))
    assert (share / 'config').is_dir() and any((share / 'config').glob('*.yaml'))
    assert (share / 'package.xml').is_file()
    assert (share / 'msg' / 'GateEvent.msg').is_file()


@pytest.mark.parametrize('name', EXECUTABLES)
def test_executables_under_lib_and_bin(name):
    prefix = Path(get_package_prefix('aura_ros'))
    lib_exe = prefix / 'lib' / 'aura_ros' / name
    assert lib_exe.is_file() and os.access(lib_exe, os.X_OK), lib_exe
    assert (Path(sys.prefix) / 'bin' / name).is_file()


def test_generated_and_handwritten_modules_share_the_import_root():
    import aura_ros
    from aura_ros.msg import GateEvent, MemoryStatus
    assert GateEvent.__module__.startswith('aura_ros.msg')
    assert MemoryStatus.__module__.startswith('aura_ros.msg')
    assert hasattr(aura_ros, '__version__')


def test_gate_event_fields_and_types():
    from aura_ros.msg import GateEvent, MemoryStatus
    fields = GateEvent.get_fields_and_field_types()
    expected = {'header': 'std_msgs/Header', 'step': 'uint64', 'wrote': 'boolean',
                'gate_probability': 'float', 'surprise': 'float', 'state_bytes': 'uint32',
                'total_writes': 'uint64', 'total_steps': 'uint64', 'bytes_written': 'uint64'}
    for name, kind in expected.items():
        assert fields[name] == kind, name
    status = MemoryStatus.get_fields_and_field_types()
    for name in ('header', 'backbone', 'memory_kind', 'd_key', 'd_value', 'state_bytes',
                 'total_steps', 'total_writes', 'write_rate', 'mean_step_latency_ms'):
        assert name in status


def test_every_message_field_is_commented():
    for path in (REPO / 'msg').glob('*.msg'):
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith('#'):
                assert '#' in line, f'{path.name}: field without a comment: {line!r}'


@pytest.mark.slow
def test_colcon_build_of_the_repository(tmp_path):
    """`colcon build` of the repository as a workspace package (the README's robot workflow)."""
    colcon = Path(sys.prefix) / 'bin' / 'colcon'
    if not colcon.exists():
        pytest.skip('colcon-common-extensions not installed (requirements-dev.txt)')
    (tmp_path / 'src').mkdir()
    (tmp_path / 'src' / 'aura_ros').symlink_to(REPO)
    env = dict(os.environ, AMENT_PREFIX_PATH=sys.prefix, CMAKE_PREFIX_PATH=sys.prefix)
    result = subprocess.run(
        [str(colcon), 'build', '--cmake-args', f'-DPython3_EXECUTABLE={sys.executable}',
         '-DBUILD_TESTING=OFF'], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    install = tmp_path / 'install' / 'aura_ros'
    assert (install / 'lib' / 'aura_ros' / 'policy_node').exists() or \
        (install / 'lib' / 'aura_ros' / 'gate_monitor').exists()
    assert (install / 'share' / 'aura_ros' / 'config').is_dir()
    site = install / 'lib' / f'python{sys.version_info.major}.{sys.version_info.minor}' / \
        'site-packages'
    # The colcon install space imports on its own: messages and hand-written modules. -S keeps
    # the venv's editable aura_ros out; its site-packages still provides the ROS wheels.
    venv_site = next(p for p in sys.path if p.endswith('site-packages'))
    check = subprocess.run(
        [sys.executable, '-S', '-c', 'import aura_ros.msg, aura_ros.nodes, aura_ros; '
         'print(aura_ros.__file__); print(aura_ros.msg.GateEvent(step=3).step)'],
        cwd=tmp_path, env=dict(env, PYTHONPATH=f'{site}:{venv_site}',
                 LD_LIBRARY_PATH=f"{install / 'lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}"),
        capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == [str(site / 'aura_ros' / '__init__.py'), '3']
