"""GateEvent and MemoryStatus round-trip between separate processes over DDS."""
import time

import pytest

from aura_ros.tools.processes import executable
from conftest import spawn

pytestmark = pytest.mark.ros


def collect(node, context, predicate, timeout):
    import rclpy
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        executor.spin_once(timeout_sec=0.1)
    executor.remove_node(node)


def test_messages_from_another_process_arrive_intact(ros_context):
    """status_publisher (separate process) -> this process: fields and counts add up."""
    import rclpy

    from aura_ros.msg import GateEvent, MemoryStatus
    node = rclpy.create_node('test_receiver', context=ros_context)
    events, statuses = [], []
    node.create_subscription(GateEvent, '/aura/gate_events', events.append, 100)
    node.create_subscription(MemoryStatus, '/aura/memory_status', statuses.append, 100)
    proc = spawn([executable('status_publisher'), '--ros-args', '-p', 'count:=20',
                  '-p', 'period:=0.02', '-p', 'write_every:=4', '-p', 'wait_for_subscriber:=30.0'])
    try:
        collect(node, ros_context, lambda: len(events) >= 20 and len(statuses) >= 20, 60)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        node.destroy_node()
    assert [e.step for e in events] == list(range(1, 21))
    assert [e.total_writes for e in events][-1] == 5
    assert sum(e.wrote for e in events) == 5
    assert all(e.state_bytes == 4224 for e in events)
    assert events[-1].bytes_written == 5 * 4224
    assert statuses[-1].memory_kind == 'aura' and statuses[-1].d_key == 32
    assert abs(statuses[-1].write_rate - 0.25) < 1e-6


def test_messages_from_this_process_arrive_intact_in_another(ros_context):
    """this process -> gate_monitor (separate process): the printed fields are the sent ones."""
    import rclpy

    from aura_ros.msg import GateEvent, MemoryStatus
    node = rclpy.create_node('test_sender', context=ros_context)
    pub = node.create_publisher(GateEvent, '/aura/gate_events', 100)
    status_pub = node.create_publisher(MemoryStatus, '/aura/memory_status', 10)
    proc = spawn([executable('gate_monitor'), '--ros-args', '-p', 'max_events:=3'])
    try:
        deadline = time.monotonic() + 30
        while (min(pub.get_subscription_count(), status_pub.get_subscription_count()) == 0
               and time.monotonic() < deadline):
            time.sleep(0.05)
        assert pub.get_subscription_count() > 0, 'gate_monitor never subscribed to events'
        assert status_pub.get_subscription_count() > 0, 'gate_monitor never subscribed to status'
        time.sleep(0.5)
        for _ in range(3):        # volatile QoS: matching may finish on the far side a bit later
            status_pub.publish(MemoryStatus(backbone='hf_pi0', memory_kind='aura', d_key=32,
                                            d_value=32, state_bytes=4224, total_steps=7,
                                            total_writes=2, write_rate=2 / 7))
            time.sleep(0.1)
        for step, wrote in ((1, True), (2, False), (3, True)):
            pub.publish(GateEvent(step=step, wrote=wrote, gate_probability=0.75,
                                  surprise=0.125, state_bytes=4224, total_writes=1 + (step > 2),
                                  total_steps=step, bytes_written=4224 * (1 + (step > 2))))
            time.sleep(0.05)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        node.destroy_node()
    lines = [line for line in out.splitlines() if line.startswith('gate_event')]
    assert lines == [
        'gate_event step=1 wrote=1 p=0.750 surprise=0.1250 state_bytes=4224 writes=1/1 '
        'bytes_written=4224',
        'gate_event step=2 wrote=0 p=0.750 surprise=0.1250 state_bytes=4224 writes=1/2 '
        'bytes_written=4224',
        'gate_event step=3 wrote=1 p=0.750 surprise=0.1250 state_bytes=4224 writes=2/3 '
        'bytes_written=8448'], out
    assert 'memory_status backbone=hf_pi0 kind=aura W=32x32 state_bytes=4224 writes=2/7' in out
