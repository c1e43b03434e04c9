"""perception_node and policy_node as separate processes (installed executables, parameter
files only) over real DDS: camera frames + joint states in, joint commands and gate events out.
The same test runs with two backbone parameter files: the swap is a file change only."""
import os
import signal
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory

from aura_ros.msg import GateEvent
from aura_ros.tools.processes import executable
from conftest import spawn
from helpers import camera_image, joint_state, spin_until

pytestmark = pytest.mark.ros


def start_nodes(params):
    env_args = ['--ros-args', '--params-file', str(params)]
    return [spawn([executable('perception_node'), *env_args]),
            spawn([executable('policy_node'), *env_args])]


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=15)[0])
        except Exception:  # noqa: BLE001
            p.kill()
            outs.append(p.communicate()[0])
    return outs


@pytest.mark.slow
@pytest.mark.parametrize('backbone', ['pi0', 'vision'])
def test_pipeline_commands_within_limits_and_gate_events_add_up(ros_context, tiny_models,
                                                                backbone):
    procs = start_nodes(tiny_models[f'params_{backbone}'])
    node = rclpy.create_node('pipeline_test', context=ros_context)
    commands, events = [], []
    node.create_subscription(JointTrajectory, '/aura/joint_commands', commands.append, 100)
    node.create_subscription(GateEvent, '/aura/gate_events', events.append, 100)
    camera = node.create_publisher(Image, '/camera/image_raw', qos_profile_sensor_data)
    joints = node.create_publisher(JointState, '/joint_states', 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    rng = np.random.default_rng(0)
    positions = np.array([0.2, -0.3, 0.95])
    try:
        ready = spin_until(executor, lambda: camera.get_subscription_count() > 0
                           and node.count_publishers('/aura/gate_events') > 0, 60)
        assert ready, 'nodes did not come up'
        deadline = time.monotonic() + 90
        while len(events) < 25 and time.monotonic() < deadline:
            joints.publish(joint_state(node, positions))
            camera.publish(camera_image(node, rng.integers(0, 256, (48, 64, 3), np.uint8)))
            spin_until(executor, lambda: False, 0.08)
            if commands:   # the "robot" follows the last command
                positions = np.array(commands[-1].points[0].positions)
    finally:
        outs = stop(procs)
        node.destroy_node()
    assert len(events) >= 25, outs
    assert commands
    for cmd in commands:
        p = np.array(cmd.points[0].positions)
        assert cmd.joint_names == ['joint_1', 'joint_2', 'joint_3']
        assert np.all(np.isfinite(p)) and np.all(p >= -1.0) and np.all(p <= 1.0)
    steps = [e.step for e in events]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert all(e.state_bytes == 4224 for e in events)       # the memory's live state size
    writes = np.cumsum([e.wrote for e in events])
    first = events[0].total_writes - int(events[0].wrote)    # writes before the first we saw
    assert [e.total_writes for e in events] == (first + writes).tolist()
    assert all(e.bytes_written == 4224 * e.total_writes for e in events)
    assert all(e.total_steps == e.step for e in events)
    assert all(0.0 <= e.gate_probability <= 1.0 for e in events)
    assert all(e.step_latency_ms > 0 and e.backbone_ms > 0 for e in events)
    assert all(p.returncode in (0, -2) for p in procs), [(p.args[0], p.returncode, out[-1500:])
                                                           for p, out in zip(procs, outs)]
    assert 'configured: backbone' in outs[1]
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
