"""gate_recorder records a live run of the nodes; bag_report and an independent reader
(mcap-ros2-support, rosbags) read it back; a recorder killed hard leaves a readable bag."""
import json
import signal
import sqlite3
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState

from aura_ros.bag_types import typestore
from aura_ros.msg import GateEvent
from aura_ros.tools import bag_report
from aura_ros.tools.processes import executable
from conftest import spawn
from helpers import camera_image, joint_state, spin_until

pytestmark = pytest.mark.ros


def run_pipeline(ros_context, params, bag, storage, frames=30, kill_recorder=False):
    """perception + policy + gate_recorder as processes; returns the GateEvents this test
    received (what was published) and the processes' output."""
    args = ['--ros-args', '--params-file', str(params)]
    recorder = spawn([executable('gate_recorder'), '--ros-args', '-p', f'output:={bag}',
                      '-p', f'storage:={storage}', '-p', 'flush_period:=0.2'])
    nodes = [spawn([executable('perception_node'), *args]),
             spawn([executable('policy_node'), *args])]
    node = rclpy.create_node('recorder_test', context=ros_context)
    events = []
    node.create_subscription(GateEvent, '/aura/gate_events', events.append, 100)
    camera = node.create_publisher(Image, '/camera/image_raw', qos_profile_sensor_data)
    joints = node.create_publisher(JointState, '/joint_states', 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        assert spin_until(executor, lambda: node.count_publishers('/aura/gate_events') > 0
                          and node.count_subscribers('/aura/gate_events') > 1, 60)
        spin_until(executor, lambda: False, 2.0)   # recorder subscribes on discovery
        rng = np.random.default_rng(1)
        deadline = time.monotonic() + 60
        while len(events) < frames and time.monotonic() < deadline:
            joints.publish(joint_state(node, (0.0, 0.1, 0.2)))
            camera.publish(camera_image(node, rng.integers(0, 256, (48, 64, 3), np.uint8)))
            spin_until(executor, lambda: False, 0.1)
        spin_until(executor, lambda: False, 1.0)   # last events reach the recorder + flush
    finally:
        for p in nodes:
            p.send_signal(signal.SIGINT)
        if kill_recorder:
            recorder.kill()                          # SIGKILL: no clean close
        else:
            recorder.send_signal(signal.SIGINT)
        outs = [p.communicate(timeout=20)[0] for p in (*nodes, recorder)]
        node.destroy_node()
    return events, outs


@pytest.mark.slow
@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_recorded_bag_matches_what_was_published(ros_context, tiny_models, tmp_path, storage):
    bag = tmp_path / 'bag'
    events, outs = run_pipeline(ros_context, tiny_models['params_pi0'], bag, storage)
    assert len(events) >= 30, outs
    assert (bag / 'metadata.yaml').is_file(), outs[2]
    summary = bag_report.report(bag, tmp_path / 'report')
    assert summary['steps'] == len(events)
    assert summary['writes'] == sum(e.wrote for e in events)
    assert summary['state_bytes_min'] == summary['state_bytes_max'] == 4224
    assert summary['bytes_written'] == events[-1].bytes_written
    assert summary['step_gap_count'] == 0 and summary['memory_resets'] == 0
    for name in ('gate_activity.png', 'cumulative_writes.png', 'state_bytes.png'):
        assert (tmp_path / 'report' / name).stat().st_size > 5000
    assert json.loads((tmp_path / 'report' / 'summary.json').read_text())['steps'] == len(events)
    # independent readers
    if storage == 'mcap':
        from mcap.reader import make_reader
        from mcap_ros2.decoder import DecoderFactory
        with open(next(bag.glob('*.mcap')), 'rb') as f:
            decoded = [m for _, ch, _, m in make_reader(
                f, decoder_factories=[DecoderFactory()]).iter_decoded_messages()
                if ch.topic == '/aura/gate_events']
    else:
        from rosbags.highlevel import AnyReader
        with AnyReader([bag], default_typestore=typestore()) as reader:
            conns = [c for c in reader.connections if c.topic == '/aura/gate_events']
            decoded = [reader.deserialize(raw, c.msgtype)
                       for c, _, raw in reader.messages(connections=conns)]
    assert [m.step for m in decoded] == [e.step for e in events]
    assert [bool(m.wrote) for m in decoded] == [e.wrote for e in events]


@pytest.mark.slow
@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_recorder_killed_hard_leaves_a_readable_bag(ros_context, tiny_models, tmp_path,
                                                    storage):
    bag = tmp_path / 'bag'
    events, outs = run_pipeline(ros_context, tiny_models['params_pi0'], bag, storage,
                                frames=20, kill_recorder=True)
    assert not (bag / 'metadata.yaml').exists()        # it never closed
    contents = bag_report.read_bag(bag)
    assert [r.step for r in contents.gate] == [e.step for e in events]
    assert any('metadata.yaml' in w for w in contents.warnings)
    if storage == 'sqlite3':   # independent check: the committed rows
        db = sqlite3.connect(next(bag.glob('*.db3')))
        n = db.execute("SELECT COUNT(*) FROM messages m JOIN topics t ON m.topic_id = t.id "
                       "WHERE t.name = '/aura/gate_events'").fetchone()[0]
        assert n == len(events)
