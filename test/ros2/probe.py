"""What the launch and CLI tests watch: an rclpy node recording one arm's topics, and the
checks of what it recorded (writes per frame kind, the command rule, results)."""
import threading
import time

import numpy as np

HOW = ('the upstream ROS 2 tools (launch_pytest, launch_ros, ros2cli) are not importable: '
       'source a ROS 2 install, or set AURA_ROS2_TOOLS=/path/to/shared/ros2-tools and run '
       '`make test` (it installs them into .ros2-tools)')


class Probe:
    """Subscribes to one arm's topics (``ns``: its namespace, '' = none) in a thread of its own:
    gate events, frame truths, joint commands (with the joint state seen last), episode
    results."""

    def __init__(self, context, name, ns=''):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import JointState
        from trajectory_msgs.msg import JointTrajectory

        from aura_ros.msg import EpisodeResult, FrameTruth, GateEvent
        from aura_ros.nodes.common import GATE_EVENTS_QOS
        prefix = f'/{ns}/' if ns else '/'
        self.node = rclpy.create_node(name, context=context)
        self.events, self.truth, self.commands, self.results = [], {}, [], []
        self.positions = None
        n = self.node
        n.create_subscription(GateEvent, prefix + 'aura/gate_events', self.events.append,
                              GATE_EVENTS_QOS)
        n.create_subscription(FrameTruth, prefix + 'sim/frame_truth', self._truth, 100)
        n.create_subscription(JointState, prefix + 'joint_states', self._joints, 100)
        n.create_subscription(JointTrajectory, prefix + 'aura/joint_commands',
                              self._command, 100)
        n.create_subscription(EpisodeResult, prefix + 'sim/episode_result',
                              self.results.append, 10)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def _truth(self, msg):
        self.truth[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg.kind

    def _joints(self, msg):
        self.positions = np.array(msg.position, float)

    def _command(self, msg):
        self.commands.append((np.array(msg.points[0].positions, float),
                              None if self.positions is None else self.positions.copy()))

    def wait(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not predicate():
            time.sleep(0.05)
        return predicate()

    def close(self):
        self._stop.set()
        self.thread.join(2.0)
        self.executor.shutdown()
        self.node.destroy_node()

    # ---- checks ----------------------------------------------------------------------------
    def writes_by_kind(self):
        """{kind: (writes, frames)} of the gate events whose frame the sim named."""
        out = {}
        for e in self.events:
            kind = self.truth.get((e.frame_stamp.sec, e.frame_stamp.nanosec))
            if kind is not None:
                w, n = out.get(kind, (0, 0))
                out[kind] = (w + int(e.wrote), n + 1)
        return out

    def command_rule_violations(self, lower, upper, max_delta):
        """Commands outside the limits, not finite, or farther than max_delta from both the
        previous command and the joint state seen last (the rule: the first command after a
        hold starts from the measured positions, every other from the previous command)."""
        bad, previous = [], None
        for command, measured in self.commands:
            refs = [r for r in (previous, measured) if r is not None]
            # Nothing to measure the step from (the probe's first command arrived before any
            # joint state reached it: discovery order, not the node's): limits only.
            near = not refs or any(np.abs(command - r).max() <= max_delta + 1e-9 for r in refs)
            if not (np.all(np.isfinite(command)) and np.all(command >= lower - 1e-9)
                    and np.all(command <= upper + 1e-9) and near):
                bad.append((command.tolist(), None if measured is None else measured.tolist()))
            previous = command
        return bad
