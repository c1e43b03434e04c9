"""perception_node in-process over DDS: conversion, resize, malformed frames dropped."""
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from aura_ros.nodes.perception_node import FRAMES_QOS, PerceptionNode
from helpers import camera_image, spin_until

pytestmark = pytest.mark.ros


@pytest.fixture
def rig(ros_context):
    node = PerceptionNode(context=ros_context, parameter_overrides=[
        Parameter('backbone.image_size', value=32)])
    test = rclpy.create_node('perception_test', context=ros_context)
    frames = []
    test.create_subscription(Image, '/aura/frames', frames.append, FRAMES_QOS)
    camera = test.create_publisher(Image, '/camera/image_raw', qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(test)
    spin_until(executor, lambda: camera.get_subscription_count() > 0, 10)
    yield node, test, camera, frames, executor
    executor.shutdown()
    node.destroy_node()
    test.destroy_node()


def test_frames_are_cropped_resized_and_keep_the_header(rig):
    node, test, camera, frames, executor = rig
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, 8:56] = 200   # the central 48x48 square
    msg = camera_image(test, rgb)
    msg.encoding, msg.data = 'bgr8', rgb[:, :, ::-1].tobytes()
    assert spin_until(executor, lambda: camera.publish(msg) or frames, 10)
    out = frames[-1]
    assert (out.width, out.height, out.encoding) == (32, 32, 'rgb8')
    assert out.header.frame_id == 'camera' and out.header.stamp == msg.header.stamp
    assert min(out.data) == 200


def test_malformed_frames_are_dropped_and_counted_node_keeps_going(rig):
    node, test, camera, frames, executor = rig
    bad = camera_image(test)
    bad.step = 10                      # step < width * 3
    unknown = camera_image(test)
    unknown.encoding = '32FC1'
    for msg in (bad, unknown):
        camera.publish(msg)
        spin_until(executor, lambda: False, 0.3)
    assert node.counts['malformed'] >= 2 and not frames
    good = camera_image(test)
    assert spin_until(executor, lambda: camera.publish(good) or frames, 10)
    assert node.counts['published'] >= 1


def test_stale_frames_dropped_once_max_frame_age_is_set_at_run_time(rig):
    node, test, camera, frames, executor = rig
    old = camera_image(test)
    old.header.stamp.sec -= 10
    assert spin_until(executor, lambda: camera.publish(old) or frames, 10)   # 0: no age check
    assert node.counts['stale'] == 0
    assert node.set_parameters([Parameter('max_frame_age', value=0.5)])[0].successful
    published = node.counts['published']
    camera.publish(old)
    spin_until(executor, lambda: node.counts['stale'] > 0, 5)
    assert node.counts['stale'] >= 1 and node.counts['published'] == published


def test_crop_change_at_run_time_applies_to_the_next_frame(rig):
    node, test, camera, frames, executor = rig
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, 8:56] = 200                           # bright centre, dark 8-pixel side bands
    msg = camera_image(test, rgb)
    assert spin_until(executor, lambda: camera.publish(msg) or frames, 10)
    assert min(frames[-1].data) == 200           # 'center' crops the bands away
    assert node.set_parameters([Parameter('crop', value='none')])[0].successful
    frames.clear()
    assert spin_until(executor, lambda: camera.publish(msg) or frames, 10)
    assert min(frames[-1].data) < 50             # 'none' squashes: the bands are in


def test_out_of_range_parameter_refused_with_reason(rig):
    node = rig[0]
    result = node.set_parameters([Parameter('max_frame_age', value=-1.0)])[0]
    assert not result.successful and 'max_frame_age' in result.reason
    result = node.set_parameters([Parameter('crop', value='diagonal')])[0]
    assert not result.successful and 'crop' in result.reason
    result = node.set_parameters([Parameter('camera_topic', value='/other')])[0]
    assert not result.successful  # read-only: structural
