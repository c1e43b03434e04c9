"""The policy node's input checks and messages, without a node."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, Header
from trajectory_msgs.msg import JointTrajectory

from aura_ros.nodes.policy_messages import (
    BadInput,
    command_message,
    frame_image,
    gate_event,
    joint_positions,
    memory_report,
)


def image(width, height, encoding='rgb8', fill=7):
    return Image(width=width, height=height, encoding=encoding, step=width * 3,
                 data=bytes([fill]) * (width * height * 3))


def test_frame_image_accepts_the_backbone_size_and_names_what_is_wrong_otherwise():
    assert frame_image(image(8, 8), 8).shape == (8, 8, 3)
    assert int(frame_image(image(8, 8), 8)[3, 4, 1]) == 7
    with pytest.raises(BadInput, match='16x8 rgb8: expects rgb8 8x8'):
        frame_image(image(16, 8), 8)
    with pytest.raises(BadInput, match='bgr8'):
        frame_image(image(8, 8, 'bgr8'), 8)
    short = image(8, 8)
    short.data = short.data[:-1]
    with pytest.raises(BadInput):
        frame_image(short, 8)


def test_joint_positions_reorders_by_name_and_refuses_missing_or_non_finite():
    msg = JointState(name=['b', 'a', 'c'], position=[2.0, 1.0, 3.0])
    assert joint_positions(msg, ['a', 'b']).tolist() == [1.0, 2.0]
    with pytest.raises(BadInput, match=r"missing joints \['d'\]"):
        joint_positions(msg, ['a', 'd'])
    with pytest.raises(BadInput, match='2 positions for 3 names'):
        joint_positions(JointState(name=['a', 'b', 'c'], position=[1.0, 2.0]), ['a'])
    with pytest.raises(BadInput, match='non-finite'):
        joint_positions(JointState(name=['a'], position=[math.nan]), ['a'])


def test_command_message_in_both_conventions():
    traj = command_message(np.array([0.1, -0.2]), 'joint_trajectory', ('j1', 'j2'), 0.25)
    assert isinstance(traj, JointTrajectory) and traj.joint_names == ['j1', 'j2']
    assert list(traj.points[0].positions) == [0.1, -0.2]
    assert (traj.points[0].time_from_start.sec, traj.points[0].time_from_start.nanosec) == \
        (0, 250_000_000)
    flat = command_message([0.1, -0.2], 'float64_multi_array', ('j1', 'j2'), 0.25)
    assert isinstance(flat, Float64MultiArray) and list(flat.data) == [0.1, -0.2]


def test_gate_event_and_report_with_and_without_memory():
    step = SimpleNamespace(wrote=True, gate_probability=0.9, surprise=1.5, total_ms=3.0,
                           backbone_ms=2.0, memory_ms=1.0)
    header = Header(frame_id='camera')
    header.stamp.sec = 12
    memory = SimpleNamespace(total_steps=4, total_writes=1, bytes_written=4224,
                             state_bytes=lambda: 4224,
                             config=SimpleNamespace(kind='aura', d_key=32, d_value=32))
    event = gate_event(step, memory, 7, header, header.stamp)
    assert (event.step, event.sequence, event.wrote, event.state_bytes, event.total_writes) == \
        (4, 7, True, 4224, 1)
    assert event.header.frame_id == 'camera' and event.frame_stamp.sec == 12
    bare = gate_event(step, None, 8, header, header.stamp, steps_without_memory=5)
    assert (bare.step, bare.state_bytes, bare.total_writes) == (5, 0, 0)

    report = memory_report(None, None, state='active', armed=True)
    assert report['memory_kind'] == 'none' and report['write_rate'] == 0.0
    assert report['state'] == 'active' and report['armed'] is True
