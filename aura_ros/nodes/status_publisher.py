"""status_publisher: publishes a short scripted stream of GateEvent and MemoryStatus messages.

A smoke-test source for the diagnostics topics (used by tests and for checking a recorder or a
monitor without a backbone): every ``period`` seconds one GateEvent on ``/aura/gate_events``,
writing every ``write_every``-th step, and a MemoryStatus on ``/aura/memory_status``.
"""
import sys
import time

from rclpy.node import Node

from aura_ros import topics
from aura_ros.msg import GateEvent, MemoryStatus
from aura_ros.nodes.common import GATE_EVENTS_QOS, declare_params, run_node, spin_until_done
from aura_ros.params import STATUS_PUBLISHER_PARAMS

STATE_BYTES = (32 * 32 + 32) * 4  # fast-weight W (32x32) + bias (32), fp32


class StatusPublisher(Node):
    def __init__(self):
        super().__init__('status_publisher')
        self.p = declare_params(self, STATUS_PUBLISHER_PARAMS)
        self.count = self.p['count']
        self.write_every = self.p['write_every']
        self.events = self.create_publisher(GateEvent, topics.GATE_EVENTS, GATE_EVENTS_QOS)
        self.status = self.create_publisher(MemoryStatus, topics.MEMORY_STATUS, 10)
        self.step = 0
        self.writes = 0
        self.timer = self.create_timer(self.p['period'], self.tick)

    def tick(self):
        self.step += 1
        wrote = self.step % self.write_every == 0
        self.writes += wrote
        stamp = self.get_clock().now().to_msg()
        event = GateEvent(step=self.step, sequence=self.step, wrote=wrote,
                          gate_probability=0.9 if wrote else 0.1,
                          surprise=float(wrote), state_bytes=STATE_BYTES,
                          total_writes=self.writes, total_steps=self.step,
                          bytes_written=self.writes * STATE_BYTES)
        event.header.stamp = stamp
        self.events.publish(event)
        status = MemoryStatus(backbone='scripted', memory_kind='aura', d_key=32, d_value=32,
                              state_bytes=STATE_BYTES, total_steps=self.step,
                              total_writes=self.writes, write_rate=self.writes / self.step,
                              bytes_written=self.writes * STATE_BYTES)
        status.header.stamp = stamp
        self.status.publish(status)

    def done(self):
        return self.count and self.step >= self.count


def spin(node):
    deadline = time.monotonic() + node.p['wait_for_subscriber']
    while node.events.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    spin_until_done(node, node.done)
    node.get_logger().info(f'published {node.step} gate events, {node.writes} writes')


def main(args=None):
    return run_node(StatusPublisher, spin, args)


if __name__ == '__main__':
    sys.exit(main())
