"""gate_recorder: record topics to a rosbag2 directory without rosbag2 (pip installs).

Raw (CDR) subscriptions are written as-is with the ``rosbags`` library, MCAP by default or
sqlite3, with each type's message definition (from the installed .msg files) so any reader can
decode the bag. The writer is flushed every ``flush_period`` seconds (MCAP chunk closed and
fsynced, sqlite committed): a recorder killed hard leaves a bag whose flushed messages can
still be read (``python -m aura_ros.tools.bag_report`` does). SIGINT/SIGTERM close the bag
cleanly (metadata.yaml written).

Nothing sent after the recorder started is lost to discovery: a topic whose type is known (the
package's own topics, see ``aura_ros.topics.TYPES``, or one named ``topic:pkg/msg/Type``) is
subscribed at start, with the QoS its publishers use (gate and episode events are reliable and
transient-local, so what they sent before the connection completed arrives too). Other topics
are subscribed as soon as the graph shows their type; every subscription is remade when the
publishers need another QoS (best effort cameras, latched topics).
"""
import importlib
import os
import signal
import sys
import time
from pathlib import Path

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from aura_ros import topics
from aura_ros.bag_types import typestore
from aura_ros.nodes.common import declare_params, run_node
from aura_ros.params import RECORDER_PARAMS


def message_class(msgtype):
    """'pkg/msg/Type' -> the generated Python class."""
    package, _, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


class GateRecorder(Node):
    bag_prefix = 'aura_bag'

    def __init__(self, node_name='gate_recorder', params=RECORDER_PARAMS, skip=(), **kwargs):
        """``skip``: topics (relative names) a subclass writes itself."""
        super().__init__(node_name, **kwargs)

        self.p = p = declare_params(self, params)
        skip = {self.resolve_topic_name(t) for t in skip}
        # relative names resolve in the node's namespace (the graph lists full names)
        self.topics, self.known_types = [], {}
        for entry in p['topics']:
            name, _, msgtype = entry.partition(':')
            topic = self.resolve_topic_name(name)
            if topic in skip:
                continue
            self.topics.append(topic)
            msgtype = msgtype or topics.TYPES.get(name.lstrip('/'), '')
            if msgtype:
                self.known_types[topic] = (msgtype, name.lstrip('/') in topics.LATCHED)
        output, storage, self.flush_period = p['output'], p['storage'], p['flush_period']
        ns = self.get_namespace().strip('/').replace('/', '_')
        self.path = Path(output or time.strftime(
            f"{self.bag_prefix}{'_' + ns if ns else ''}_%Y%m%d_%H%M%S"))
        from rosbags.rosbag2 import StoragePlugin, Writer
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        self.writer = Writer(self.path, version=9, storage_plugin=plugin)
        self.writer.open()
        self.storage = storage
        self.connections = {}
        self.subscribed = {}         # topic -> (subscription, (best_effort, latched), class)
        self.counts = {}
        self.dirty = False
        self.closed = False
        for topic, (msgtype, latched) in self.known_types.items():   # no wait for discovery
            self._add_topic(topic, msgtype, (False, latched))
        self.create_timer(0.5, self.discover)
        self.create_timer(self.flush_period, self.flush)
        self.get_logger().info(f'recording {self.topics} to {self.path} ({storage})')

    def discover(self):
        """Subscribe to each requested topic as soon as its type is known on the graph, with a
        QoS every publisher can serve (as ``ros2 bag record`` adapts it): best effort when one
        of them is (a camera driver's sensor-data QoS), transient-local when all are (latched
        topics such as episode events: what was published before the connection completed is
        recorded too). A subscription made before the publishers appeared is remade when they
        need another QoS (a latched topic's history may then be recorded twice; readers drop
        repeated events)."""
        types = dict(self.get_topic_names_and_types())
        for topic in self.topics:
            if topic not in types:
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            latched = bool(publishers) and all(
                p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers)
            best_effort = any(p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
                              for p in publishers)
            want = (best_effort, latched)
            if topic in self.connections:
                if publishers and self.subscribed[topic][1] != want:
                    self.destroy_subscription(self.subscribed[topic][0])
                    self._subscribe(topic, self.subscribed[topic][2], want)
                continue
            self._add_topic(topic, types[topic][0], want)

    def _add_topic(self, topic, msgtype, want):
        """A bag connection and a subscription for ``topic``; False when the type is unknown
        here (logged, the other topics go on)."""
        try:
            store = typestore([msgtype])
            conn = self.writer.add_connection(topic, msgtype, typestore=store)
            cls = message_class(msgtype)
        except Exception as exc:  # noqa: BLE001 - an unknown type must not stop the rest
            self.get_logger().error(f'cannot record {topic} ({msgtype}): {exc}',
                                    throttle_duration_sec=10.0)
            return False
        self.connections[topic] = conn
        self.counts[topic] = 0
        self._subscribe(topic, cls, want)
        self.get_logger().info(f'recording {topic} [{msgtype}]')
        return True

    def _subscribe(self, topic, cls, want):
        best_effort, latched = want
        qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT if best_effort
                         else ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL if latched
                         else DurabilityPolicy.VOLATILE)
        sub = self.create_subscription(cls, topic, lambda data, t=topic: self.on_message(t, data),
                                       qos, raw=True)
        self.subscribed[topic] = (sub, want, cls)

    def on_message(self, topic, data):
        if self.closed:
            return
        self.writer.write(self.connections[topic], time.time_ns(), data)
        self.counts[topic] += 1
        self.dirty = True
        self.recorded(topic, data)

    def recorded(self, topic, data):
        """Called for every message written (subclasses look at some)."""

    def flush(self):
        """Make everything written so far durable (survives kill -9)."""
        if self.closed or not self.dirty:
            return
        storage = self.writer.storage
        if self.storage == 'mcap':
            if storage.chunk.msgs:            # rosbags 0.11 MCAP writer: close the open chunk
                storage.close_chunk()
            storage.bio.flush()
            os.fsync(storage.bio.fileno())
        else:
            storage.conn.commit()
        self.dirty = False

    def close(self):
        if not self.closed:
            self.closed = True
            self.writer.close()
            total = sum(self.counts.values())
            self.get_logger().info(f'closed {self.path}: {total} messages {self.counts}')


def spin(node):
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):   # close the bag cleanly on either
        signal.signal(sig, lambda *_: stop.append(True))
    while rclpy.ok() and not stop:
        rclpy.spin_once(node, timeout_sec=0.1)


def main(args=None):
    return run_node(GateRecorder, spin, args, close=GateRecorder.close, exit_process=True,
                    signal_handler_options=SignalHandlerOptions.NO)


if __name__ == '__main__':
    sys.exit(main())
