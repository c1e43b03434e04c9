"""gate_monitor: prints GateEvent and MemoryStatus messages, one line each.

``ros2 topic echo`` for installs without ros2cli. Exits after ``max_events`` gate events (0 =
run until Ctrl-C) or after ``idle_timeout`` seconds without any message once one arrived.
"""
import sys
import time

from rclpy.node import Node

from aura_ros import topics
from aura_ros.msg import GateEvent, MemoryStatus
from aura_ros.nodes.common import declare_params, run_node, spin_until_done
from aura_ros.params import MONITOR_PARAMS


class GateMonitor(Node):
    def __init__(self):
        super().__init__('gate_monitor')
        self.p = declare_params(self, MONITOR_PARAMS)
        self.max_events = self.p['max_events']
        self.idle_timeout = self.p['idle_timeout']
        self.events = 0
        self.last_message = None
        self.create_subscription(GateEvent, topics.GATE_EVENTS, self.on_event, 100)
        self.create_subscription(MemoryStatus, topics.MEMORY_STATUS, self.on_status, 10)

    def on_event(self, msg):
        self.events += 1
        self.last_message = time.monotonic()
        print(f'gate_event step={msg.step} wrote={int(msg.wrote)} p={msg.gate_probability:.3f} '
              f'surprise={msg.surprise:.4f} state_bytes={msg.state_bytes} '
              f'writes={msg.total_writes}/{msg.total_steps} bytes_written={msg.bytes_written}',
              flush=True)

    def on_status(self, msg):
        self.last_message = time.monotonic()
        print(f'memory_status backbone={msg.backbone} kind={msg.memory_kind} '
              f'W={msg.d_key}x{msg.d_value} state_bytes={msg.state_bytes} '
              f'writes={msg.total_writes}/{msg.total_steps} rate={msg.write_rate:.3f} '
              f'latency_ms={msg.mean_step_latency_ms:.2f}', flush=True)

    def done(self):
        if self.max_events and self.events >= self.max_events:
            return True
        idle = self.last_message and time.monotonic() - self.last_message > self.idle_timeout
        return bool(self.idle_timeout and idle)


def main(args=None):
    return run_node(GateMonitor, lambda node: spin_until_done(node, node.done), args)


if __name__ == '__main__':
    sys.exit(main())
