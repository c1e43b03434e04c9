"""policy_node (lifecycle): frames -> frozen VLA backbone + AURA memory -> joint commands.

configure  loads the backbone (adapter from the ``backbone.*`` parameters) and the memory
           checkpoint (its path and sha256 logged); a failure leaves the node unconfigured with
           the reason in the log.
activate   starts the execution (aura_ros.control.execution): ``sync`` (the newest frame -> one
           PolicyRunner step -> one command) or ``async`` (the newest frame -> a time-stamped
           chunk, commands at ``control_rate``). Each memory step publishes a GateEvent.
deactivate stops it; cleanup frees the models; shutdown ends the process.
Safety (control/limits.py, the same code in both executions): with ``start_armed: false``
nothing is commanded (and no frame is processed) until ~/arm is called; ~/disarm sends one hold
command (the measured positions) and stops. After any hold (frames stopped for
``frame_timeout``, disarm/arm, deactivate/activate, stale joint states) the first command is
within ``command.max_delta`` of the measured positions, every other within ``max_delta`` of the
previous command; without fresh joint states nothing is commanded. MemoryStatus and /diagnostics
go out at ``status_rate``. Services (Trigger): ~/reset_memory, ~/report_memory, ~/arm, ~/disarm.
This file is the ROS shell (lifecycle, parameters, topics, services, clock); what happens between
inputs and outputs is nodes/policy_session.py, the messages nodes/policy_messages.py.
"""
import json
import os
import sys

import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import JumpThreshold
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from aura_ros import topics
from aura_ros.msg import GateEvent, MemoryStatus
from aura_ros.nodes import policy_messages as messages
from aura_ros.nodes.common import (
    GATE_EVENTS_QOS,
    ThrottledLog,
    declare_params,
    diagnostic_array,
    run_node,
    stamp_to_sec,
)
from aura_ros.nodes.policy_diagnostics import PolicyDiagnostics
from aura_ros.nodes.policy_session import PolicySession
from aura_ros.params import POLICY_PARAMS

FRAMES_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


class PolicyNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__('policy_node', **kwargs)
        self.diag = PolicyDiagnostics()       # counters, rates, latencies, the status line
        self.counts = self.diag.counts
        self.log = ThrottledLog(self.get_logger())
        self.p = declare_params(self, POLICY_PARAMS, on_refuse=self._on_refused_parameter)
        torch.set_num_threads(self.p['torch_threads'])
        self.session = PolicySession(self.p, self.diag, self.get_logger(), self.log,
                                     self.publish_command, self.publish_gate_event,
                                     clock=lambda: self.get_clock().now().nanoseconds * 1e-9,
                                     alive=lambda: self.context.ok())
        self.finished = False                  # lifecycle shutdown: the process ends
        self.sequence = 0                      # GateEvents published since start (gap check)
        self.state_label = 'unconfigured'
        # Diagnostics in every lifecycle state (an unconfigured node says why).
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        self.status_pub = self.command_pub = self.gate_pub = None   # lifecycle: on configure
        self._aura_subs, self._aura_services, self._aura_timers = [], [], []
        self.create_timer(1.0 / self.p['status_rate'], self.publish_status)
        self.add_post_set_parameters_callback(self._apply_parameters)
        # Sim time may jump (a simulator restarts, a bag loops). Frame ages and the stale-frame
        # check use this clock; the control loop runs on the monotonic clock and does not care.
        self._jump_handle = self.get_clock().create_jump_callback(
            JumpThreshold(min_forward=Duration(seconds=1.0),
                          min_backward=Duration(nanoseconds=-1)),
            post_callback=self._on_clock_jump)
        if self.p['autostart']:  # once the executor spins: configure, then activate
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    @property
    def runner(self):
        return self.session.runner

    @property
    def execution(self):
        return self.session.execution

    def _on_clock_jump(self, jump):
        self.session.clock_jumped()
        message = (f'clock jumped by {jump.delta.nanoseconds * 1e-9:+.3f} s '
                   f'({jump.clock_change.name})')
        self.diag.problem(message)
        self.get_logger().warning(message)

    def _apply_parameters(self, params):
        """Validated changes reach what uses them: ``self.p`` (read by the hot paths, never
        ``get_parameter`` per frame), then the execution and the runner."""
        for param in params:
            if param.name in self.p:
                value = param.value
                self.p[param.name] = list(value) if isinstance(value, (list, tuple)) else value
        self.session.apply_parameters({p.name for p in params})

    def _on_refused_parameter(self, reason):
        self.counts['refused_parameters'] = self.counts.get('refused_parameters', 0) + 1
        self.diag.problem(f'refused parameter change: {reason}')

    # ---- lifecycle ----------------------------------------------------------------------------
    def _autostart(self):
        self._autostart_timer.cancel()
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            loaded = self.session.load(self._params_dir())
            self._create_interfaces()
        except Exception as exc:  # noqa: BLE001 - any load failure: stay unconfigured
            self.get_logger().error(f'configure failed, staying unconfigured: '
                                    f'{type(exc).__name__}: {exc}')
            self.session.unload()
            self._destroy_interfaces()
            self.diag.problem(f'configure failed: {exc}')
            self.counts['configure_failures'] += 1
            return TransitionCallbackReturn.FAILURE
        self.state_label = 'inactive'
        self.get_logger().info(f'configured: {loaded}')
        return TransitionCallbackReturn.SUCCESS

    def _params_dir(self):
        """Folder for relative paths: the --params-file's folder when one was given."""
        for i, arg in enumerate(sys.argv):
            if arg == '--params-file' and i + 1 < len(sys.argv):
                return os.path.dirname(os.path.abspath(sys.argv[i + 1]))
        return os.getcwd()

    def _create_interfaces(self):
        """Lifecycle publishers (they publish only while active; destroyed on cleanup), the
        subscriptions, services and the watchdog of a configured node."""
        p, session = self.p, self.session
        self.command_pub = self.create_lifecycle_publisher(
            messages.command_type(p['command.type']), p['command.topic'], 10)
        self.gate_pub = self.create_lifecycle_publisher(GateEvent, topics.GATE_EVENTS,
                                                        GATE_EVENTS_QOS)
        self.status_pub = self.create_lifecycle_publisher(MemoryStatus, topics.MEMORY_STATUS,
                                                          10)
        self._aura_subs = [
            self.create_subscription(Image, p['frames_topic'], self.on_frame, FRAMES_QOS),
            self.create_subscription(JointState, p['joint_states_topic'], session.joint_state,
                                     10),
            self.create_subscription(String, p['instruction_topic'],
                                     lambda msg: session.set_instruction(msg.data), 10)]
        self._aura_services = [
            self.create_service(Trigger, '~/' + name, self._trigger(action))
            for name, action in (('reset_memory', session.reset), ('arm', session.arm),
                                 ('disarm', session.disarm), ('report_memory', self._report))]
        self._aura_timers = [self.create_timer(0.02, session.watchdog)]

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self.session.start()
        self.state_label = 'active'
        self.get_logger().info(f"active ({self.p['execution']} execution, "
                               f"{'armed' if self.session.armed else 'disarmed'}): commanding "
                               f"on {self.p['command.topic']}")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self.session.stop()
        self.state_label = 'inactive'
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self.session.unload()
        self._destroy_interfaces()
        self.state_label = 'unconfigured'
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Finalized: stop, then the process ends (exit 0) once the transition is answered."""
        self.session.stop()
        self.state_label = 'finalized'
        self.finished = True
        return TransitionCallbackReturn.SUCCESS

    def _destroy_interfaces(self):
        for sub in self._aura_subs:
            self.destroy_subscription(sub)
        for srv in self._aura_services:
            self.destroy_service(srv)
        for timer in self._aura_timers:
            self.destroy_timer(timer)
        for name in ('command_pub', 'gate_pub', 'status_pub'):
            if getattr(self, name, None) is not None:
                self.destroy_lifecycle_publisher(getattr(self, name))
            setattr(self, name, None)
        self._aura_subs, self._aura_services, self._aura_timers = [], [], []

    # ---- inputs and outputs -------------------------------------------------------------------
    def on_frame(self, msg):
        self.session.frame(msg, stamp_to_sec(msg.header.stamp))

    def _publish(self, publisher, msg):
        """Publish unless cleaned up, inactive or shutting down (a lifecycle publisher that is
        not activated would log a warning per message; a SIGINT invalidates the context while
        a worker may be publishing: neither is a fault). Returns whether it was sent."""
        if publisher is None or not publisher.is_activated or not self.context.ok():
            return False
        try:
            publisher.publish(msg)
        except Exception:  # noqa: BLE001 - only a shutdown race gets here quietly
            if self.context.ok():
                raise
            return False
        return True

    def publish_command(self, positions):
        p = self.p
        msg = messages.command_message(positions, p['command.type'], p['command.joint_names'],
                                       p['command.time_from_start'])
        if self._publish(self.command_pub, msg):
            self.counts['commands'] += 1
            self.diag.command_rate.tick()

    def publish_gate_event(self, frame, step):
        self.sequence += 1
        self._publish(self.gate_pub, messages.gate_event(
            step, self.session.runner.memory, self.sequence, frame.header,
            self.get_clock().now().to_msg(), self.counts['steps']))

    # ---- services and status -----------------------------------------------------------------
    @staticmethod
    def _trigger(action):
        """A Trigger service callback from ``action() -> (success, message)``."""
        def serve(request, response):
            response.success, response.message = action()
            return response
        return serve

    def _report(self):
        return self.session.runner is not None, json.dumps(self.report())

    def report(self):
        return self.session.report(self.state_label)

    def publish_status(self):
        if not self.context.ok():
            return
        try:
            self._publish_status()
        except Exception as exc:  # noqa: BLE001 - a status report must never stop the node
            if self.context.ok():
                self.log('error', f'status report failed: {exc}')

    def _publish_status(self):
        if self.session.runner is None:
            level, message, values = self.diag.unconfigured(self.state_label)
        else:
            report = self.report()
            self._publish(self.status_pub, messages.memory_status(
                report, self.p['backbone.adapter'], self.diag.mean_step_ms(),
                self.counts['skipped_frames'], self.get_clock().now().to_msg()))
            level, message, values = self.session.status(self.state_label, report)
        self.diag_pub.publish(diagnostic_array(self, 'aura_ros: policy', level, message,
                                               values))


def spin(node):
    """Until Ctrl-C, ROS shutdown or the lifecycle shutdown transition (then exit 0)."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    while node.context.ok() and not node.finished:
        executor.spin_once(timeout_sec=0.1)


def main(args=None):
    return run_node(PolicyNode, spin, args, close=lambda node: node.session.stop(),
                    exit_process=True)


if __name__ == '__main__':
    sys.exit(main())
