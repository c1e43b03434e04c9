"""Recording demonstrations on a (simulated) robot: episode_recorder's services put episodes and
outcomes into the bag; sim_teleop + sim_arm_node + episode_recorder as processes record
episodes that ``train episodes`` turns into a checkpoint the policy node loads from its
parameter file."""
import signal

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_srvs.srv import SetBool, Trigger

from aura_ros.tools.processes import executable
from conftest import spawn, write_params
from helpers import spin_until

pytestmark = pytest.mark.ros


def call(executor, client, request, timeout=10.0):
    assert spin_until(executor, client.service_is_ready, 30), client.srv_name
    future = client.call_async(request)
    assert spin_until(executor, future.done, timeout)
    return future.result()


def test_recorder_services_write_episodes_and_outcomes_readable_by_rosbags(ros_context,
                                                                           tmp_path):
    bag = tmp_path / 'bag'
    proc = spawn([executable('episode_recorder'), '--ros-args', '-p', f'output:={bag}',
                  '-p', 'instruction:=stack the cups'])
    node = rclpy.create_node('recorder_test', context=ros_context)
    start = node.create_client(Trigger, '/episode_recorder/start_episode')
    end = node.create_client(SetBool, '/episode_recorder/end_episode')
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        assert not call(executor, end, SetBool.Request(data=True)).success   # none running
        first = call(executor, start, Trigger.Request())
        assert first.success and first.message == 'episode 0 started'
        again = call(executor, start, Trigger.Request())
        assert not again.success and 'episode 0 is running' in again.message
        assert call(executor, end, SetBool.Request(data=True)).message == \
            'episode 0 ended: success'
        assert call(executor, start, Trigger.Request()).success
        assert call(executor, end, SetBool.Request(data=False)).message == \
            'episode 1 ended: failure'
    finally:
        proc.send_signal(signal.SIGINT)
        log = proc.communicate(timeout=20)[0]
        node.destroy_node()
    assert proc.returncode == 0, log
    assert '2 episodes, 1 successful' in log
    # an independent reader: rosbags with only the definitions stored in the bag
    from rosbags.highlevel import AnyReader
    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.topic == '/aura/episode_events']
        assert conns and conns[0].msgtype == 'aura_ros/msg/EpisodeEvent'
        events = [reader.deserialize(raw, c.msgtype)
                  for c, _, raw in reader.messages(connections=conns)]
    assert [(e.event, e.episode, e.success) for e in events] == [
        (0, 0, False), (1, 0, True), (0, 1, False), (1, 1, False)]
    assert events[0].instruction == 'stack the cups' and events[1].instruction == ''
    assert events[0].header.stamp.sec > 0


def test_recorder_matches_a_camera_s_best_effort_qos_and_gets_latched_events(ros_context,
                                                                              tmp_path):
    """A camera driver publishes best effort (a reliable subscription would get nothing); an
    event published before the recorder connected is still recorded (latched)."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from aura_ros.msg import EpisodeEvent
    from aura_ros.nodes.common import EVENTS_QOS
    from helpers import camera_image
    node = rclpy.create_node('camera_driver', context=ros_context)
    camera = node.create_publisher(Image, '/camera/image_raw', qos_profile_sensor_data)
    events = node.create_publisher(EpisodeEvent, '/sim/episode_events', EVENTS_QOS)
    events.publish(EpisodeEvent(event=EpisodeEvent.START, seed=7))   # nobody listens yet
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    bag = tmp_path / 'bag'
    proc = spawn([executable('episode_recorder'), '--ros-args', '-p', f'output:={bag}', '-p',
                  'topics:=[camera/image_raw, sim/episode_events]'])
    try:
        assert spin_until(executor, lambda: camera.get_subscription_count() > 0, 30)
        for _ in range(20):
            camera.publish(camera_image(node))
            spin_until(executor, lambda: False, 0.05)
        events.publish(EpisodeEvent(event=EpisodeEvent.END, seed=7, success=True))
        spin_until(executor, lambda: False, 0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        log = proc.communicate(timeout=20)[0]
        node.destroy_node()
    assert proc.returncode == 0, log
    assert '1 episodes, 1 successful' in log      # the sim's episode, recorded, is counted
    from rosbags.highlevel import AnyReader
    with AnyReader([bag]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        conn = next(c for c in reader.connections if c.topic == '/sim/episode_events')
        seeds = [reader.deserialize(raw, conn.msgtype).seed
                 for _, _, raw in reader.messages(connections=[conn])]
    assert counts['/camera/image_raw'] >= 15, counts
    assert seeds == [7, 7]


@pytest.mark.slow
def test_teleop_recording_trains_a_checkpoint_the_policy_node_loads(ros_context, tiny_models,
                                                                     tmp_path):
    from aura_ros.bench.train_from_recordings import record_sim_demonstrations
    from aura_ros.nodes.policy_node import PolicyNode
    from aura_ros.params import read_params_file
    from aura_ros.train.episodes import Settings, train_from_recordings
    ok, outcomes = record_sim_demonstrations(tmp_path / 'bag', 2, progress=False)
    assert ok and len(outcomes) == 2
    params = write_params(tmp_path / 'arm.yaml', dict(tiny_models['pi0_block'],
                                                      model_path=str(tiny_models['root'] /
                                                                     'pi0')),
                          '', extra_policy={'command': {
                              'joint_names': ['joint_1', 'joint_2', 'joint_3'],
                              'lower_limits': [-0.6, -2.6, -2.6],
                              'upper_limits': [3.7416, 2.6, 2.6], 'max_delta': 0.15}})
    report = train_from_recordings([str(tmp_path / 'bag')], params, tmp_path / 'out',
                                   Settings(steps=60, progress=False))
    assert report['episodes']['total'] == 2 and report['frames'] >= 40
    # most frames have both a joint state and a command within 50 ms (the sim runs at 30 fps;
    # on a loaded 2-core CI machine a few messages arrive later than that: 58 of 65 seen)
    assert report['frames_labelled'] >= 0.75 * report['frames']
    # the user's step: append the printed lines to the parameter file, start the node
    params.write_text(params.read_text() + '\n' + (tmp_path / 'out' / 'params.yaml').read_text())
    values, _ = read_params_file(params, 'policy_node')
    assert values['memory.checkpoint'] == str((tmp_path / 'out' / 'memory.safetensors')
                                              .resolve())
    node = PolicyNode(context=ros_context, parameter_overrides=[
        rclpy.parameter.Parameter(k, value=v) for k, v in values.items()])
    try:
        from rclpy.lifecycle import TransitionCallbackReturn
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        memory = node.runner.memory
        assert memory is not None and memory.config.feature_dim == 128
        step = node.runner.step(np.zeros((64, 64, 3), np.uint8), np.array([1.57, -2.5, 2.5]))
        assert step.command is not None and np.all(np.isfinite(step.command))
    finally:
        node.session.stop()
        node.destroy_node()


@pytest.mark.slow
def test_teleop_records_the_mujoco_arm(tmp_path):
    """engine:=mujoco for sim_arm_node and sim_teleop: the operator succeeds and the bag holds
    the SO-101's five joints in joint states and demonstrated commands."""
    pytest.importorskip('aura_ros.sim.mujoco_arm', reason='MuJoCo not installed')
    from aura_ros.bench.train_from_recordings import record_sim_demonstrations
    ok, outcomes = record_sim_demonstrations(tmp_path / 'bag', 2, variant='visible',
                                             noise=0.0, progress=False, engine='mujoco')
    assert ok and outcomes == [True, True]
    from rosbags.highlevel import AnyReader
    with AnyReader([tmp_path / 'bag']) as reader:
        widths = {}
        for conn, _, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic in ('/joint_states', '/teleop/joint_commands'):
                names = msg.name if hasattr(msg, 'name') else msg.joint_names
                widths[conn.topic] = list(names)
    so101 = ['shoulder_pan', 'shoulder_lift', 'elbow_flex', 'wrist_flex', 'wrist_roll']
    assert widths == {'/joint_states': so101, '/teleop/joint_commands': so101}
