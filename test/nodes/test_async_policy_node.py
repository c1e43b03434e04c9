"""policy_node with ``execution: async`` in process over DDS: disarmed it commands nothing and
steps no memory; armed, commands come at the control rate from time-stamped chunks (within
limits) while gate events come per processed frame; run-time changes apply or are refused;
~/disarm holds once and stops; cleanup destroys the interfaces."""
import numpy as np
import pytest
import rclpy
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from aura_ros.imaging import rgb_to_msg_fields
from aura_ros.msg import GateEvent
from aura_ros.nodes.policy_node import FRAMES_QOS, PolicyNode
from helpers import joint_state, overrides, spin_until

pytestmark = pytest.mark.ros


def call(executor, client, request=None, timeout=10):
    future = client.call_async(request or Trigger.Request())
    assert spin_until(executor, future.done, timeout)
    return future.result()


def param(name, value):
    kind = ParameterType.PARAMETER_DOUBLE if isinstance(value, float) else \
        ParameterType.PARAMETER_STRING
    v = ParameterValue(type=kind)
    if isinstance(value, float):
        v.double_value = value
    else:
        v.string_value = value
    return ParameterMsg(name=name, value=v)


@pytest.mark.slow
def test_async_execution_arming_rates_and_run_time_changes(ros_context, tiny_models):
    node = PolicyNode(context=ros_context, parameter_overrides=overrides(
        tiny_models, execution='async', start_armed=False, control_rate=100.0,
        **{'chunk.action_period': 0.05, 'chunk.max_age': 2.0,
           'command.max_velocity': 2.0}))
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    test = rclpy.create_node('async_probe', context=ros_context)
    commands, events = [], []
    test.create_subscription(JointTrajectory, 'aura/joint_commands',
                             lambda m: commands.append(np.array(m.points[0].positions)), 1000)
    test.create_subscription(GateEvent, 'aura/gate_events', events.append, 1000)
    frames = test.create_publisher(Image, 'aura/frames', FRAMES_QOS)
    joints = test.create_publisher(JointState, 'joint_states', 10)
    arm = test.create_client(Trigger, 'policy_node/arm')
    disarm = test.create_client(Trigger, 'policy_node/disarm')
    set_params = test.create_client(SetParameters, 'policy_node/set_parameters')
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(test)
    frame = Image(**rgb_to_msg_fields(np.zeros((64, 64, 3), np.uint8)))

    def stream(seconds):
        end = test.get_clock().now().nanoseconds + int(seconds * 1e9)
        while test.get_clock().now().nanoseconds < end:
            joints.publish(joint_state(test, (0.1, 0.2, 0.3)))
            frame.header.stamp = test.get_clock().now().to_msg()
            frames.publish(frame)
            spin_until(executor, lambda: False, 0.033)

    try:
        spin_until(executor, lambda: frames.get_subscription_count() > 0, 10)
        stream(1.0)                                   # disarmed: nothing at all
        assert commands == [] and events == [] and node.counts['disarmed_frames'] > 5
        assert node.report()['armed'] is False
        assert call(executor, arm).success
        stream(2.0)
        assert len(events) >= 10                      # one memory step per processed frame
        assert len(commands) > 2 * len(events)        # commands at the control rate
        c = np.array(commands)
        assert np.all(np.isfinite(c)) and np.all(np.abs(c) <= 1.0)
        assert np.abs(np.diff(c, axis=0)).max() <= 2.0 * 0.01 + 1e-9   # max_velocity x period
        stats = node.execution.stats()
        assert stats['inference_errors'] == 0 and stats['armed']
        # run-time changes: a valid one applies, an invalid one is refused with the reason
        result = call(executor, set_params, SetParameters.Request(parameters=[
            param('control_rate', 50.0), param('chunk.transition', 'latest')]))
        assert all(r.successful for r in result.results)
        assert node.execution.loop.period == pytest.approx(0.02)
        assert node.execution.loop.executor.transition == 'latest'
        result = call(executor, set_params, SetParameters.Request(parameters=[
            param('chunk.transition', 'teleport')]))
        assert not result.results[0].successful and 'chunk.transition' in \
            result.results[0].reason
        assert node.execution.loop.executor.transition == 'latest'
        # frames stop (joint states go on): the newest chunk ages past chunk.max_age (set at
        # run time), the loop holds by silence (the controller keeps its last goal), the
        # watchdog flags it
        result = call(executor, set_params, SetParameters.Request(parameters=[
            param('chunk.max_age', 0.3)]))
        assert result.results[0].successful
        holds, n = node.execution.loop.holds, len(commands)
        end = test.get_clock().now().nanoseconds + int(1.2e9)
        while test.get_clock().now().nanoseconds < end:
            joints.publish(joint_state(test, (0.1, 0.2, 0.3)))
            spin_until(executor, lambda: False, 0.033)
        # at most the rest of the chunk (0.3 s at 50 Hz) went out; then nothing
        assert len(commands) - n <= 0.3 * 50 + 3
        assert node.execution.loop.holds > holds + 30 and node.session.holding
        assert 'max_chunk_age 0.3' in node.execution.loop.last_hold[1]
        # disarm: one hold command at the measured positions, then silence
        assert call(executor, disarm).success
        spin_until(executor, lambda: False, 0.2)      # commands already in flight arrive
        n = len(commands)
        stream(0.5)
        spin_until(executor, lambda: False, 0.2)
        assert len(commands) == n
        np.testing.assert_allclose(commands[-1], [0.1, 0.2, 0.3])
        steps = node.runner.memory.total_steps
        stream(0.3)
        assert node.runner.memory.total_steps == steps     # disarmed: memory does not step
        # lifecycle publishers: silent while inactive, gone after cleanup
        assert test.count_publishers('/aura/joint_commands') == 1
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.execution is None
        n = len(commands)
        node.publish_command(np.zeros(3))
        spin_until(executor, lambda: False, 0.3)
        assert len(commands) == n
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert spin_until(executor, lambda: test.count_publishers('/aura/joint_commands') == 0
                          and test.count_publishers('/aura/gate_events') == 0, 5.0)
    finally:
        node.session.stop()
        executor.shutdown()
        test.destroy_node()
        node.destroy_node()
