"""Helpers for node tests: spinning until a condition, test images and joint states."""
import time

import numpy as np
from rclpy.parameter import Parameter
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


def overrides(tiny_models, **extra):
    """PolicyNode parameter overrides for the tiny PI0 + its memory (armed, no autostart)."""
    block = dict(tiny_models['pi0_block'], model_path=str(tiny_models['root'] / 'pi0'))
    values = {f'backbone.{k}': v for k, v in block.items()}
    values.update({'memory.checkpoint': str(tiny_models['memory_pi0']),
                   'command.lower_limits': [-1.0, -1.0, -1.0],
                   'command.upper_limits': [1.0, 1.0, 1.0], 'autostart': False,
                   'frame_timeout': 0.3, 'status_rate': 10.0, 'start_armed': True})
    values.update(extra)
    return [Parameter(k, value=v) for k, v in values.items()]
