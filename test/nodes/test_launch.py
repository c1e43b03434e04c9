"""launch/sim_demo.launch.py under launch_pytest (on a ROS 2 install with launch_pytest): the
policy node reaches ``active``, gate events arrive, and every command is finite and inside the
joint limits of the parameter file.

Where launch_pytest is not importable (PyPI-only installs like CI here; upstream launch_pytest
also needs pytest < 8.4, which is what ROS distributions ship) this module is skipped;
test_namespaces.py and test_pipeline.py start the same executables with the same parameter
files as processes and assert the same behaviour.
"""
import os
import time

import pytest

launch_pytest = pytest.importorskip(
    'launch_pytest', reason='launch_pytest is not importable here (no ROS 2 apt install); '
    'test_namespaces.py / test_pipeline.py run the same graph as processes')
launch = pytest.importorskip('launch')

import numpy as np  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from aura_ros.params import read_params_file  # noqa: E402

pytestmark = pytest.mark.ros
SHARE = get_package_share_directory('aura_ros')
PARAMS = os.path.join(SHARE, 'config', 'default.yaml')


@launch_pytest.fixture(scope='module')
def sim_demo(tmp_path_factory):
    bag = tmp_path_factory.mktemp('launch') / 'bag'
    return launch.LaunchDescription([
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(SHARE, 'launch', 'sim_demo.launch.py')),
            launch_arguments={'episodes': '3', 'bag': str(bag)}.items()),
        launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=sim_demo)
def test_policy_active_gate_events_arrive_commands_within_limits():
    import rclpy
    from lifecycle_msgs.srv import GetState
    from trajectory_msgs.msg import JointTrajectory

    from aura_ros.msg import GateEvent
    values, _ = read_params_file(PARAMS, 'policy_node')
    lower = np.array(values['command.lower_limits'])
    upper = np.array(values['command.upper_limits'])
    rclpy.init()
    node = rclpy.create_node('launch_probe')
    events, commands = [], []
    node.create_subscription(GateEvent, 'aura/gate_events', events.append, 1000)
    node.create_subscription(JointTrajectory, 'aura/joint_commands',
                             lambda m: commands.append(np.array(m.points[0].positions)), 1000)
    get_state = node.create_client(GetState, 'policy_node/get_state')
    try:
        state, deadline = '', time.monotonic() + 120
        while time.monotonic() < deadline and (state != 'active' or len(events) < 20):
            rclpy.spin_once(node, timeout_sec=0.1)
            if state != 'active' and get_state.service_is_ready():
                future = get_state.call_async(GetState.Request())
                rclpy.spin_until_future_complete(node, future, timeout_sec=5)
                state = future.result().current_state.label if future.result() else ''
        assert state == 'active'
        assert len(events) >= 20 and len(commands) >= 20
        c = np.array(commands)
        assert np.all(np.isfinite(c)) and np.all(c >= lower) and np.all(c <= upper)
        assert {e.state_bytes for e in events} == {4224}
    finally:
        node.destroy_node()
        rclpy.shutdown()
