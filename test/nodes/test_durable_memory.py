"""Durable memory: snapshots track gate writes; after kill -9 the policy node restores the
last snapshot."""
import json
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from safetensors import safe_open
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger

from aura_ros.msg import GateEvent
from aura_ros.tools.processes import executable
from conftest import spawn, write_params
from helpers import camera_image, joint_state, spin_until

pytestmark = pytest.mark.ros


def call(executor, client, timeout=60):
    """Call until a reply comes: after a kill -9, discovery still lists the dead server for a
    while, and requests sent before the new one matched are lost."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not client.wait_for_service(timeout_sec=1.0):
            continue
        future = client.call_async(Trigger.Request())
        if spin_until(executor, future.done, 3.0) and future.result() is not None:
            return json.loads(future.result().message)
    raise AssertionError('no reply from report_memory')


@pytest.mark.slow
def test_kill_9_then_restart_restores_the_last_snapshot(ros_context, tiny_models, tmp_path):
    snapshot = tmp_path / 'state' / 'memory.safetensors'
    params = write_params(tmp_path / 'durable.yaml',
                          dict(tiny_models['pi0_block'],
                               model_path=str(tiny_models['root'] / 'pi0')),
                          tiny_models['memory_pi0'],
                          extra_policy={'memory': {'checkpoint': str(tiny_models['memory_pi0']),
                                                   'durable': True,
                                                   'snapshot_path': str(snapshot)}})
    args = ['--ros-args', '--params-file', str(params)]
    perception = spawn([executable('perception_node'), *args])
    policy = spawn([executable('policy_node'), *args])
    node = rclpy.create_node('durable_test', context=ros_context)
    events = []
    node.create_subscription(GateEvent, '/aura/gate_events', events.append, 100)
    camera = node.create_publisher(Image, '/camera/image_raw', qos_profile_sensor_data)
    joints = node.create_publisher(JointState, '/joint_states', 10)
    report = node.create_client(Trigger, '/policy_node/report_memory')
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    rng = np.random.default_rng(2)

    def feed(n):
        start = len(events)
        deadline = time.monotonic() + 60
        while len(events) < start + n and time.monotonic() < deadline:
            joints.publish(joint_state(node, (0.0, 0.1, 0.2)))
            camera.publish(camera_image(node, rng.integers(0, 256, (48, 64, 3), np.uint8)))
            spin_until(executor, lambda: False, 0.08)

    try:
        assert spin_until(executor, lambda: node.count_publishers('/aura/gate_events'), 60)
        feed(20)
        spin_until(executor, lambda: False, 0.5)
        before = call(executor, report)
        writes = sum(e.wrote for e in events)
        assert writes > 0, 'the test needs some gate writes'
        assert before['counts']['snapshots'] == before['total_writes']  # storage tracks gate
        assert before['storage_bytes_written'] > 0
        policy.kill()                                   # kill -9 mid-run
        policy.wait(timeout=10)
        with safe_open(str(snapshot), framework='pt') as f:
            meta = f.metadata()
        counters = json.loads(meta['counters'])
        assert counters[1] == before['total_writes']    # the last snapshot is the last write
        policy = spawn([executable('policy_node'), *args])
        after = call(executor, report)
        assert after['state_sha256'] == meta['sha256']  # restored exactly the snapshot
        assert after['total_writes'] == counters[1] and after['total_steps'] == counters[0]
    finally:
        for p in (perception, policy):
            if p.poll() is None:
                p.terminate()
            p.communicate(timeout=20)
        node.destroy_node()
    assert sorted(x.name for x in snapshot.parent.iterdir()) == ['memory.safetensors']
