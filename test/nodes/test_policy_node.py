"""policy_node in-process: parameters (ranges, read-only), lifecycle, services, watchdog."""
import json
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from aura_ros.imaging import rgb_to_msg_fields
from aura_ros.nodes.policy_node import FRAMES_QOS, PolicyNode
from helpers import joint_state, overrides, spin_until

pytestmark = pytest.mark.ros


@pytest.fixture
def policy(ros_context, tiny_models):
    node = PolicyNode(context=ros_context, parameter_overrides=overrides(tiny_models))
    yield node
    node.session.stop()
    node.destroy_node()


def test_out_of_range_parameters_refused_with_the_reason(policy):
    result = policy.set_parameters([Parameter('command.max_delta', value=10.0)])[0]
    assert not result.successful and 'command.max_delta' in result.reason
    result = policy.set_parameters([Parameter('memory.gate_threshold', value=1.5)])[0]
    assert not result.successful
    result = policy.set_parameters([Parameter('frame_timeout', value=float('nan'))])[0]
    assert not result.successful
    assert policy.set_parameters([Parameter('command.max_delta', value=0.02)])[0].successful


@pytest.mark.parametrize('name, value', [('backbone.adapter', 'vision_features'),
                                         ('backbone.model_path', '/elsewhere'),
                                         ('command.joint_names', ['a', 'b', 'c']),
                                         ('memory.checkpoint', '/x.safetensors')])
def test_structural_parameters_are_read_only(policy, name, value):
    result = policy.set_parameters([Parameter(name, value=value)])[0]
    assert not result.successful


def test_invalid_start_parameter_refused_at_construction(ros_context, tiny_models):
    with pytest.raises(ValueError, match='command.max_delta'):
        PolicyNode(context=ros_context,
                   parameter_overrides=overrides(tiny_models, **{'command.max_delta': -1.0}))


def test_backbone_that_fails_to_load_leaves_the_node_unconfigured(ros_context, tiny_models,
                                                                   tmp_path):
    node = PolicyNode(context=ros_context, parameter_overrides=overrides(
        tiny_models, **{'backbone.model_path': str(tmp_path / 'missing')}))
    try:
        from rclpy.lifecycle import TransitionCallbackReturn
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.runner is None and 'not a local folder' in node.diag.last_problem
        assert node.state_label == 'unconfigured'
    finally:
        node.destroy_node()


def test_lifecycle_services_and_watchdog(policy, ros_context):
    from rclpy.lifecycle import TransitionCallbackReturn
    assert policy.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert policy.trigger_activate() == TransitionCallbackReturn.SUCCESS
    test = rclpy.create_node('policy_test', context=ros_context)
    commands = []
    test.create_subscription(JointTrajectory, '/aura/joint_commands', commands.append, 100)
    frames = test.create_publisher(Image, '/aura/frames', FRAMES_QOS)
    joints = test.create_publisher(JointState, '/joint_states', 10)
    reset = test.create_client(Trigger, '/policy_node/reset_memory')
    report = test.create_client(Trigger, '/policy_node/report_memory')
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(policy)
    executor.add_node(test)
    rgb = np.zeros((64, 64, 3), np.uint8)
    try:
        spin_until(executor, lambda: frames.get_subscription_count() > 0, 10)
        # frames without joint states: refuse to command
        frame = Image(**rgb_to_msg_fields(rgb))
        frames.publish(frame)
        spin_until(executor, lambda: policy.counts['refused_no_joint_states'] > 0, 10)
        assert not commands
        for _ in range(6):
            joints.publish(joint_state(test, (0.1, 0.2, 0.3)))
            frame.header.stamp = test.get_clock().now().to_msg()
            frames.publish(frame)
            spin_until(executor, lambda: False, 0.1)
        assert spin_until(executor, lambda: len(commands) >= 3, 10)
        steps_before = policy.runner.memory.total_steps
        assert steps_before >= 3
        # frames stop: one hold command at the measured positions, then silence
        n = len(commands)
        spin_until(executor, lambda: policy.session.holding, 5)
        spin_until(executor, lambda: False, 0.5)
        assert policy.session.holding and len(commands) == n + 1
        np.testing.assert_allclose(commands[-1].points[0].positions, [0.1, 0.2, 0.3])
        # services
        future = reset.call_async(Trigger.Request())
        spin_until(executor, future.done, 5)
        assert future.result().success and policy.runner.memory.total_steps == 0
        future = report.call_async(Trigger.Request())
        spin_until(executor, future.done, 5)
        data = json.loads(future.result().message)
        assert data['state_bytes'] == 4224 and data['memory_kind'] == 'aura'
        # frames resume: commanding again
        frames.publish(frame)
        assert spin_until(executor, lambda: len(commands) > n + 1, 10)
        assert not policy.session.holding
    finally:
        executor.shutdown()
        test.destroy_node()


def test_gate_threshold_set_at_run_time_reaches_the_memory(policy, ros_context):
    """`ros2 param set /policy_node memory.gate_threshold 0.99` (here: the same SetParameters
    service over DDS) applies on the next frame: the gate writes iff its probability exceeds
    the threshold in force, before and after the change."""
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from rclpy.lifecycle import TransitionCallbackReturn

    from aura_ros.msg import GateEvent
    assert policy.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert policy.trigger_activate() == TransitionCallbackReturn.SUCCESS
    test = rclpy.create_node('threshold_test', context=ros_context)
    events = []
    test.create_subscription(GateEvent, '/aura/gate_events', events.append, 100)
    frames = test.create_publisher(Image, '/aura/frames', FRAMES_QOS)
    joints = test.create_publisher(JointState, '/joint_states', 10)
    set_params = test.create_client(SetParameters, '/policy_node/set_parameters')
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(policy)
    executor.add_node(test)
    rng = np.random.default_rng(3)

    def run(n):
        start = len(events)
        for _ in range(n):
            joints.publish(joint_state(test, (0.1, 0.2, 0.3)))
            frame = Image(**rgb_to_msg_fields(rng.integers(0, 256, (64, 64, 3), np.uint8)))
            frame.header.stamp = test.get_clock().now().to_msg()
            frames.publish(frame)
            count = len(events)
            spin_until(executor, lambda count=count: len(events) > count, 5)
        return events[start:]

    def set_threshold(value):
        request = SetParameters.Request(parameters=[ParameterMsg(
            name='memory.gate_threshold', value=ParameterValue(
                type=ParameterType.PARAMETER_DOUBLE, double_value=value))])
        future = set_params.call_async(request)
        spin_until(executor, future.done, 5)
        return future.result().results[0]

    try:
        spin_until(executor, lambda: frames.get_subscription_count() > 0 and
                   set_params.service_is_ready(), 10)
        assert set_threshold(0.01).successful
        low = run(12)
        assert set_threshold(0.99).successful
        high = run(12)
        assert len(low) >= 10 and len(high) >= 10
        assert sum(e.wrote for e in low) >= len(low) - 1    # the gate is open at 0.01 ...
        assert sum(e.wrote for e in high) <= 1              # ... and shut at 0.99
        for threshold, batch in ((0.01, low), (0.99, high)):
            assert all(e.wrote == (e.gate_probability > threshold) for e in batch)
        assert all(0.01 < e.gate_probability < 0.99 for e in low + high)   # same gate
    finally:
        executor.shutdown()
        test.destroy_node()


def test_sim_clock_jumping_back_is_counted_and_frames_on_the_new_clock_are_not_stale(
        ros_context, tiny_models):
    """use_sim_time: the simulator restarts its clock (100 s -> 10 s). The node counts the jump,
    says so in /diagnostics, and keeps commanding from frames stamped on the new clock without
    taking them for stale ones (their stamps are below the old clock's newest)."""
    from builtin_interfaces.msg import Time
    from rclpy.lifecycle import TransitionCallbackReturn
    from rosgraph_msgs.msg import Clock
    node = PolicyNode(context=ros_context, parameter_overrides=overrides(
        tiny_models, frame_timeout=30.0) + [Parameter('use_sim_time', value=True)])
    test = rclpy.create_node('clock_test', context=ros_context)
    commands = []
    test.create_subscription(JointTrajectory, '/aura/joint_commands', commands.append, 100)
    clock = test.create_publisher(Clock, '/clock', 10)
    frames = test.create_publisher(Image, '/aura/frames', FRAMES_QOS)
    joints = test.create_publisher(JointState, '/joint_states', 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(test)
    rng = np.random.default_rng(5)

    def at(seconds):
        clock.publish(Clock(clock=Time(sec=int(seconds), nanosec=0)))
        spin_until(executor, lambda: node.get_clock().now().nanoseconds // 10**9
                   == int(seconds), 5)

    def frames_at(seconds, n=4):
        start = len(commands)
        for i in range(n):
            stamp = Time(sec=int(seconds), nanosec=i * 10**8)
            joints.publish(joint_state(test, (0.1, 0.2, 0.3)))
            frame = Image(**rgb_to_msg_fields(rng.integers(0, 256, (64, 64, 3), np.uint8)))
            frame.header.stamp = stamp
            frames.publish(frame)
            count = len(commands)
            spin_until(executor, lambda count=count: len(commands) > count, 5)
        return len(commands) - start

    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        spin_until(executor, lambda: clock.get_subscription_count() > 0 and
                   frames.get_subscription_count() > 0, 10)
        at(100)
        jumps = node.counts['clock_jumps']             # ROS time switching on may count one
        assert frames_at(100) >= 3
        assert node.counts['stale_frames_used'] == 0
        at(10)                                          # the simulator restarted
        assert node.counts['clock_jumps'] == jumps + 1
        assert 'clock jumped by -90.000 s' in node.diag.last_problem
        assert frames_at(10) >= 3                       # still commanding ...
        assert node.counts['stale_frames_used'] == 0    # ... and nothing taken for stale
    finally:
        executor.shutdown()
        test.destroy_node()
        node.destroy_node()


def test_sync_resume_after_a_hold_and_disarm_follow_the_measured_positions(policy, ros_context):
    """The reported hazard: after a frame-timeout hold at A the arm was moved to B; the first
    command must be within max_delta of B, not walk back from the old command. Disarm in sync
    execution: one hold at the measured positions, then nothing, and no memory step while
    frames keep arriving; armed again, the first command starts from the measured positions."""
    from rclpy.lifecycle import TransitionCallbackReturn
    assert policy.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert policy.trigger_activate() == TransitionCallbackReturn.SUCCESS
    test = rclpy.create_node('resume_test', context=ros_context)
    commands = []
    test.create_subscription(JointTrajectory, '/aura/joint_commands',
                             lambda m: commands.append(np.array(m.points[0].positions)), 100)
    frames = test.create_publisher(Image, '/aura/frames', FRAMES_QOS)
    joints = test.create_publisher(JointState, '/joint_states', 10)
    arm = test.create_client(Trigger, '/policy_node/arm')
    disarm = test.create_client(Trigger, '/policy_node/disarm')
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(policy)
    executor.add_node(test)
    frame = Image(**rgb_to_msg_fields(np.zeros((64, 64, 3), np.uint8)))
    max_delta = policy.p['command.max_delta']
    a, b = np.array([0.8, -0.8, 0.8]), np.zeros(3)

    def stream(q, seconds, with_frames=True):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            joints.publish(joint_state(test, q))
            if with_frames:
                frame.header.stamp = test.get_clock().now().to_msg()
                frames.publish(frame)
            spin_until(executor, lambda: False, 0.04)

    def call(client):
        future = client.call_async(Trigger.Request())
        spin_until(executor, future.done, 5)
        return future.result()

    try:
        spin_until(executor, lambda: frames.get_subscription_count() > 0
                   and disarm.service_is_ready(), 10)
        stream(a, 1.0)
        assert len(commands) >= 5 and np.abs(commands[-1] - a).max() <= 2 * max_delta
        n = len(commands)
        stream(a, 0.8, with_frames=False)              # frames stop: the watchdog holds at A
        assert policy.session.holding and len(commands) == n + 1
        np.testing.assert_allclose(commands[-1], a)
        stream(b, 0.3, with_frames=False)              # meanwhile the arm is moved to B
        n = len(commands)
        stream(b, 0.6)                                 # frames resume
        assert len(commands) > n + 3
        assert np.abs(commands[n] - b).max() <= max_delta + 1e-9     # from B, not from A
        assert np.abs(np.diff(np.array(commands[n:]), axis=0)).max() <= max_delta + 1e-9
        # disarm (sync): one hold at the measured positions, then nothing
        steps = policy.runner.memory.total_steps
        assert call(disarm).success
        spin_until(executor, lambda: False, 0.2)
        n = len(commands)
        np.testing.assert_allclose(commands[-1], b)
        stream(b, 0.8)                                 # frames keep arriving
        assert len(commands) == n and policy.runner.memory.total_steps == steps
        assert policy.counts['disarmed_frames'] >= 5
        c = np.array([0.3, 0.3, -0.3])
        stream(c, 0.3, with_frames=False)
        assert call(arm).success
        stream(c, 0.5)
        assert len(commands) > n
        assert np.abs(commands[n] - c).max() <= max_delta + 1e-9
    finally:
        executor.shutdown()
        test.destroy_node()
