"""Normal operation logs no ERROR or WARN (operators must be able to trust them), and the
lifecycle shutdown transition ends the process: a real policy_node process driven through its
lifecycle and arming services while frames flow, then stopped by SIGINT mid-stream."""
import signal
import time

import numpy as np
import pytest
import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from aura_ros.imaging import rgb_to_msg_fields
from aura_ros.nodes.policy_node import FRAMES_QOS
from aura_ros.tools.processes import executable
from conftest import spawn, write_params
from helpers import joint_state, spin_until

pytestmark = pytest.mark.ros
ACTIVE = 3


@pytest.fixture
def graph(ros_context, tiny_models, tmp_path):
    params = write_params(tmp_path / 'p.yaml', dict(tiny_models['pi0_block'],
                                                    model_path=str(tiny_models['root'] / 'pi0')),
                          tiny_models['memory_pi0'],
                          extra_policy={'start_armed': False, 'frame_timeout': 0.3})
    proc = spawn([executable('policy_node'), '--ros-args', '--params-file', str(params)])
    node = rclpy.create_node('clean_test', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    clients = {name: node.create_client(srv, f'/policy_node/{name}') for name, srv in
               (('get_state', GetState), ('change_state', ChangeState), ('arm', Trigger),
                ('disarm', Trigger))}

    def call(name, request=None, timeout=30):
        """The service's response (None: no answer within ``timeout``: the node's executor
        may be busy configuring, e.g. compiling on a loaded machine)."""
        client = clients[name]
        assert spin_until(executor, client.service_is_ready, 60), name
        future = client.call_async(request or client.srv_type.Request())
        spin_until(executor, future.done, timeout)
        return future.result() if future.done() else None

    def active():
        reply = call('get_state', timeout=2)
        return reply is not None and reply.current_state.id == ACTIVE
    try:
        assert spin_until(executor, active, 120)
        yield node, executor, call, proc
    finally:                     # also when setup failed: no policy_node left on the domain
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        node.destroy_node()


def transition(call, transition_id):
    return call('change_state', ChangeState.Request(
        transition=Transition(id=transition_id))).success


@pytest.mark.slow
def test_arming_lifecycle_and_sigint_log_no_error_or_warning(graph):
    node, executor, call, proc = graph
    commands = []
    node.create_subscription(JointTrajectory, '/aura/joint_commands', commands.append, 100)
    frames = node.create_publisher(Image, '/aura/frames', FRAMES_QOS)
    joints = node.create_publisher(JointState, '/joint_states', 10)
    frame = Image(**rgb_to_msg_fields(np.zeros((64, 64, 3), np.uint8)))

    def stream(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            joints.publish(joint_state(node, (0.1, 0.2, 0.3)))
            frame.header.stamp = node.get_clock().now().to_msg()
            frames.publish(frame)
            spin_until(executor, lambda: False, 0.03)

    stream(0.5)                                         # disarmed: nothing commanded
    assert not commands
    assert call('arm').success
    stream(1.0)
    assert len(commands) > 5
    assert call('disarm').success
    stream(0.5)                                         # frames go on while disarmed
    assert transition(call, Transition.TRANSITION_DEACTIVATE)
    stream(0.5)                                         # inactive: frames still arrive
    assert transition(call, Transition.TRANSITION_ACTIVATE)
    assert call('arm').success
    n = len(commands)
    stream(1.0)
    assert len(commands) > n + 5
    proc.send_signal(signal.SIGINT)                     # mid-stream: steps in flight
    stream(0.3)
    output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, output[-2000:]
    noisy = [line for line in output.splitlines() if '[ERROR]' in line or '[WARN]' in line]
    assert noisy == [], noisy


def test_the_shutdown_transition_ends_the_process(graph):
    node, executor, call, proc = graph
    t0 = time.monotonic()
    assert transition(call, Transition.TRANSITION_ACTIVE_SHUTDOWN)
    output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0 and time.monotonic() - t0 < 10, output[-2000:]
    assert '[ERROR]' not in output
