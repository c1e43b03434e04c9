"""Helpers for node tests: spinning until a condition, test images and joint states."""
import time

import numpy as np
from sensor_msgs.msg import Image, JointState

from aura_ros.imaging import rgb_to_msg_fields


def spin_until(executor, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        executor.spin_once(timeout_sec=0.05)
    return predicate()


def camera_image(node, rgb=None, size=(48, 64), frame_id='camera'):
    if rgb is None:
        rgb = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    msg = Image(**rgb_to_msg_fields(rgb))
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.header.frame_id = frame_id
    return msg


def joint_state(node, positions=(0.0, 0.0, 0.0), names=('joint_1', 'joint_2', 'joint_3')):
    msg = JointState(name=list(names), position=[float(p) for p in positions])
    msg.header.stamp = node.get_clock().now().to_msg()
    return msg
