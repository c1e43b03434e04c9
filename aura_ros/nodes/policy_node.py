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
"""
import json
import os
import sys
import threading
import time

import numpy as np
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
from aura_ros.backbones.base import MAX_INSTRUCTION_CHARS, BackboneUnavailable
from aura_ros.control.execution import ExecutionConfig, make_execution
from aura_ros.control.limits import NoJointStates
from aura_ros.msg import GateEvent, MemoryStatus
from aura_ros.nodes.common import (
    GATE_EVENTS_QOS,
    ThrottledLog,
    declare_params,
    diagnostic_array,
    run_node,
    stamp_to_sec,
)
from aura_ros.nodes.policy_diagnostics import PolicyDiagnostics
from aura_ros.nodes.policy_messages import (
    BadInput,
    command_message,
    command_type,
    frame_image,
    gate_event,
    joint_positions,
    memory_report,
    memory_status,
)
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
        self.runner = None
        self.lock = threading.RLock()         # runner state: worker vs services/watchdog
        self.execution = None                 # while active: SyncExecution or AsyncPolicy
        self._told_scheduler = False           # the control thread's SCHED_FIFO refusal logged
        self._control_errors_seen = 0          # async control ticks that raised, reported
        self._armed = self.p['start_armed']    # armed state while no execution runs (else its)
        self.finished = False                  # lifecycle shutdown: the process ends
        self.sequence = 0                      # GateEvents published since start (gap check)
        self.positions = None                 # latest valid joint positions (command order)
        self.positions_time = 0.0
        self.last_frame_time = None
        self.holding = False
        self.backbone_down = None             # why the backbone does not answer (None: it does)
        self.instruction = ''
        self.newest_stamp = 0.0               # newest frame stamp received so far
        self.durable = None                   # DurableMemory when memory.durable
        self.state_label = 'unconfigured'
        # Diagnostics in every lifecycle state (an unconfigured node says why).
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        self.status_pub = self.command_pub = self.gate_pub = None   # lifecycle: on configure
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

    def _on_clock_jump(self, jump):
        """The node's clock jumped (or ROS time was switched on or off): frames stamped on the
        new clock are not stale because an older clock ran further."""
        self.counts['clock_jumps'] += 1
        self.newest_stamp = 0.0
        message = (f'clock jumped by {jump.delta.nanoseconds * 1e-9:+.3f} s '
                   f'({jump.clock_change.name})')
        self.problem(message)
        self.get_logger().warning(message)

    def problem(self, message):
        """Remember a problem for the diagnostics (WARN for a few seconds)."""
        self.diag.problem(message)

    @property
    def armed(self):
        return self.execution.armed if self.execution is not None else self._armed

    def _apply_parameters(self, params):
        """Validated changes reach what uses them: ``self.p`` (read by the hot paths, never
        ``get_parameter`` per frame), the execution's settings and the runner."""
        for param in params:
            if param.name in self.p:
                value = param.value
                self.p[param.name] = list(value) if isinstance(value, (list, tuple)) else value
        if self.execution is not None and {p.name for p in params} & set(
                ExecutionConfig.PARAMETERS):
            self.execution.configure(**ExecutionConfig.from_params(self.p).runtime())
        if self.runner is not None:
            with self.lock:
                self._apply_to_runner(self.runner)

    def _apply_to_runner(self, runner):
        """Run-time parameters the runner uses (called on configure and on every change)."""
        p = self.p
        runner.limits.set_rates(p['command.max_delta'], p['command.max_velocity'])
        runner.memory_enabled = p['memory.enabled']
        if runner.memory is not None:
            runner.memory.set_gate_threshold(p['memory.gate_threshold'])

    def _on_refused_parameter(self, reason):
        self.counts['refused_parameters'] = self.counts.get('refused_parameters', 0) + 1
        self.problem(f'refused parameter change: {reason}')

    # ---- lifecycle ----------------------------------------------------------------------------
    def _autostart(self):
        self._autostart_timer.cancel()
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        from aura_ros.policy import load_runner
        try:
            base_dir = self._params_dir()
            self.runner, loaded = load_runner(self.p, base_dir)
            self._apply_to_runner(self.runner)
            self.durable = None
            if self.runner.memory is not None and self.p['memory.durable']:
                from aura_ros.nodes.durable import DurableMemory
                path = DurableMemory.snapshot_path(self.p['memory.snapshot_path'], base_dir)
                self.durable = DurableMemory(path, self.runner.memory, self.get_logger(),
                                             self.counts)
                self.durable.restore()
            self._create_interfaces()
        except Exception as exc:  # noqa: BLE001 - any load failure: stay unconfigured
            self.get_logger().error(f'configure failed, staying unconfigured: '
                                    f'{type(exc).__name__}: {exc}')
            if self.runner is not None:
                self.runner.backbone.close()
            self.runner = self.durable = None
            self._destroy_interfaces()
            self.problem(f'configure failed: {exc}')
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

    def _save_snapshot(self):
        self.durable.save(lambda message: self.log('error', message))

    def _create_interfaces(self):
        """Lifecycle publishers (they publish only while active; destroyed on cleanup), the
        subscriptions, services and the watchdog of a configured node."""
        p = self.p
        self.command_pub = self.create_lifecycle_publisher(command_type(p['command.type']),
                                                           p['command.topic'], 10)
        self.gate_pub = self.create_lifecycle_publisher(GateEvent, topics.GATE_EVENTS,
                                                        GATE_EVENTS_QOS)
        self.status_pub = self.create_lifecycle_publisher(MemoryStatus, topics.MEMORY_STATUS,
                                                          10)
        self._aura_subs = [
            self.create_subscription(Image, p['frames_topic'], self.on_frame, FRAMES_QOS),
            self.create_subscription(JointState, p['joint_states_topic'], self.on_joint_state,
                                     10),
            self.create_subscription(String, p['instruction_topic'], self.on_instruction, 10)]
        self._aura_services = [self.create_service(Trigger, '~/reset_memory', self.on_reset),
                               self.create_service(Trigger, '~/report_memory', self.on_report),
                               self.create_service(Trigger, '~/arm', self.on_arm),
                               self.create_service(Trigger, '~/disarm', self.on_disarm)]
        self._aura_timers = [self.create_timer(0.02, self.watchdog)]

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._told_scheduler = False
        self._control_errors_seen = 0
        self.last_frame_time, self.holding = None, False   # watch frames from now on
        self.execution = make_execution(
            ExecutionConfig.from_params(self.p), self.runner, self.publish_command,
            self._fresh_positions, on_step=self._after_step, on_error=self._step_failed,
            lock=self.lock, start_armed=self._armed, instruction=self._instruction)
        self.state_label = 'active'
        self.get_logger().info(f"active ({self.p['execution']} execution, "
                               f"{'armed' if self.armed else 'disarmed'}): commanding on "
                               + self.p['command.topic'])
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_execution()
        self.state_label = 'inactive'
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._stop_execution()
        self._destroy_interfaces()
        if self.runner is not None:
            self.runner.backbone.close()
        self.runner = self.durable = self.backbone_down = None
        self.state_label = 'unconfigured'
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Finalized: stop, then the process ends (exit 0) once the transition is answered."""
        self._stop_execution()
        self.state_label = 'finalized'
        self.finished = True
        return TransitionCallbackReturn.SUCCESS

    def _stop_execution(self):
        """Stop inference and control (each waits at most 1 s for a step in progress); the
        armed state is kept for the next activation."""
        execution, self.execution = self.execution, None
        if execution is not None:
            self._armed = execution.armed
            execution.stop()

    def _destroy_interfaces(self):
        for sub in getattr(self, '_aura_subs', []):
            self.destroy_subscription(sub)
        for srv in getattr(self, '_aura_services', []):
            self.destroy_service(srv)
        for timer in getattr(self, '_aura_timers', []):
            self.destroy_timer(timer)
        for name in ('command_pub', 'gate_pub', 'status_pub'):
            if getattr(self, name, None) is not None:
                self.destroy_lifecycle_publisher(getattr(self, name))
            setattr(self, name, None)
        self._aura_subs, self._aura_services, self._aura_timers = [], [], []

    # ---- inputs -----------------------------------------------------------------------------
    def on_frame(self, msg):
        self.counts['frames'] += 1
        self.last_frame_time = time.monotonic()
        self.diag.frame_rate.tick()
        stamp = stamp_to_sec(msg.header.stamp)
        if stamp < self.newest_stamp:
            self.counts['stale_frames_used'] += 1   # a newer frame was already here
        self.newest_stamp = max(self.newest_stamp, stamp)
        execution = self.execution
        if execution is None:
            return
        observation = self._observation(msg)
        if observation is None:
            return
        age = self.get_clock().now().nanoseconds * 1e-9 - stamp
        obs_time = time.monotonic() - min(max(age, 0.0), 1.0)   # the frame's time, our clock
        dropped = execution.dropped
        execution.submit(observation, obs_time, context=msg)
        self.counts['skipped_frames'] += execution.dropped - dropped   # replaced unprocessed

    def on_joint_state(self, msg):
        try:
            positions = joint_positions(msg, self.p['command.joint_names'])
        except BadInput as exc:
            self.counts['bad_joint_states'] += 1
            self.log('warning', str(exc))
            return
        self.positions, self.positions_time = positions, time.monotonic()

    def on_instruction(self, msg):
        text = msg.data
        if len(text) > MAX_INSTRUCTION_CHARS:
            self.counts['bad_instructions'] += 1
            self.problem(f'instruction of {len(text)} characters ignored')
            self.get_logger().warning(f'ignored instruction of {len(text)} characters '
                                      f'(limit {MAX_INSTRUCTION_CHARS})')
            return
        self.instruction = text.strip()
        self.get_logger().info(f'instruction: {self.instruction!r}')

    # ---- the execution's callbacks (worker thread, runner lock held) -----------------------------
    def _after_step(self, msg, chunk, step):
        """One memory step was taken for frame ``msg`` (its command, if any, already sent)."""
        self._backbone_back()
        if step.wrote and self.durable is not None:   # storage writes = gate writes
            self._save_snapshot()
        self.holding = False
        self.counts['steps'] += 1
        self.publish_gate_event(msg, step, self.runner)
        if step.rejected:
            self.counts['invalid_actions'] += 1
            self.problem(f'command withheld: {step.rejected}')
            self.log('warning', f'command withheld: {step.rejected}')
        self._step_done(msg, step)

    def _step_failed(self, msg, exc):
        """A step raised: nothing was commanded for this frame (sync: one hold when steps
        start failing). A backbone outage is told from a bug by its type."""
        if not self.context.ok():          # shutting down (SIGINT): not a fault
            return
        if isinstance(exc, NoJointStates):
            self.counts['refused_no_joint_states'] += 1
            self.problem('no fresh joint states: not commanding')
            self.log('warning', 'no fresh joint states on '
                                f"{self.p['joint_states_topic']}: not commanding")
            return
        if isinstance(exc, BackboneUnavailable):
            self.counts['backbone_unavailable'] += 1       # frames lost to it
            if self.backbone_down is None:
                self.get_logger().error(f'backbone unavailable: holding position until it '
                                        f'answers ({exc})')
            self.backbone_down = str(exc)
            return
        self.counts['step_errors'] += 1
        self.problem(f'step failed: {exc}')
        self.log('error', f'policy step failed: {type(exc).__name__}: {exc}')

    def _backbone_back(self):
        if self.backbone_down is not None:
            self.backbone_down = None
            self.get_logger().warning('backbone answers again: resuming')

    def _instruction(self):
        return self.instruction or self.p['instruction']

    def _fresh_positions(self):
        """The newest joint positions, or None when older than joint_state_timeout."""
        positions = self.positions
        if (positions is None
                or time.monotonic() - self.positions_time > self.p['joint_state_timeout']):
            return None
        return positions

    def _observation(self, msg):
        """The image of a frame, or None (counted and logged) when it cannot be used:
        disarmed or a malformed frame. (Joint states are the execution's to read, from
        ``_fresh_positions``.)"""
        if not self.armed:
            self.counts['disarmed_frames'] += 1
            return None
        try:
            return frame_image(msg, self.p['backbone.image_size'])
        except BadInput as exc:
            self.counts['bad_frames'] += 1
            self.problem(f'bad frame {msg.width}x{msg.height} {msg.encoding}')
            self.log('warning', str(exc))
            return None

    def _step_done(self, msg, step):
        now_s = self.get_clock().now().nanoseconds * 1e-9
        self.diag.step_done(step.total_ms, 1e3 * (now_s - stamp_to_sec(msg.header.stamp)))

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
        msg = command_message(positions, p['command.type'], p['command.joint_names'],
                              p['command.time_from_start'])
        if self._publish(self.command_pub, msg):
            self.counts['commands'] += 1
            self.diag.command_rate.tick()

    def publish_gate_event(self, frame, step, runner):
        self.sequence += 1
        self._publish(self.gate_pub, gate_event(step, runner.memory, self.sequence, frame.header,
                                                self.get_clock().now().to_msg(),
                                                self.counts['steps']))

    def watchdog(self):
        """Frames stopped while armed: hold (sync: one hold command at the measured positions;
        async: the control loop holds by itself once the newest chunk is older than
        chunk.max_age), then command nothing until frames resume, from the measured positions.
        A disarmed node commands nothing, so frames stopping then is not reported."""
        execution = self.execution
        if execution is None or self.last_frame_time is None or self.holding:
            return
        silent = time.monotonic() - self.last_frame_time
        if silent <= self.p['frame_timeout']:
            return
        self.holding = True
        if not execution.armed:
            return
        execution.frames_stopped()   # one hold command (sync); nothing without joint states
        self.counts['holds'] += 1
        self.get_logger().warning(f'no frames for {silent:.2f} s: holding position, commands '
                                  f'stopped until frames resume')

    # ---- services and status -----------------------------------------------------------------
    def on_reset(self, request, response):
        with self.lock:
            if self.runner is None:
                response.success, response.message = False, 'not configured'
                return response
            if self.execution is not None:   # also drops frames and chunks of the old episode
                self.execution.reset()
            else:
                self.runner.reset()
            if self.durable is not None:
                self._save_snapshot()
        response.success, response.message = True, 'memory reset'
        return response

    def on_arm(self, request, response):
        """Start commanding (from the measured positions: no jump from an old command)."""
        with self.lock:
            if self.runner is None:
                response.success, response.message = False, 'not configured'
                return response
            self.last_frame_time, self.holding = None, False   # watch frames from now on
            if self.execution is not None:
                self.execution.arm()
            else:
                self._armed = True
                self.runner.forget_commands()
        self.get_logger().info('armed: commanding on ' + self.p['command.topic'])
        response.success, response.message = True, 'armed'
        return response

    def on_disarm(self, request, response):
        """Stop commanding: one hold command (the measured positions), then nothing."""
        with self.lock:
            if self.execution is not None:
                held = self.execution.disarm()
            else:
                self._armed, held = False, None
        self.get_logger().info('disarmed: holding position, commands stopped')
        response.success = True
        response.message = 'disarmed' + ('' if held is not None else ' (no hold command sent: '
                                         'no fresh joint states, or not active)')
        return response

    def on_report(self, request, response):
        response.success = self.runner is not None
        response.message = json.dumps(self.report())
        return response

    def report(self):
        return memory_report(self.runner.memory if self.runner else None, self.durable,
                             state=self.state_label, armed=self.armed,
                             execution=self.p['execution'], counts=dict(self.counts))

    def publish_status(self):
        if not self.context.ok():
            return
        try:
            self._publish_status()
        except Exception as exc:  # noqa: BLE001 - a status report must never stop the node
            if self.context.ok():
                self.log('error', f'status report failed: {exc}')

    def _publish_status(self):
        if self.runner is None:
            level, message, values = self.diag.unconfigured(self.state_label)
            self.diag_pub.publish(diagnostic_array(self, 'aura_ros: policy', level, message,
                                                   values))
            return
        report = self.report()
        status = memory_status(report, self.p['backbone.adapter'], self.diag.mean_step_ms(),
                               self.counts['skipped_frames'], self.get_clock().now().to_msg())
        self._publish(self.status_pub, status)
        execution = self.execution
        stats = execution.stats() if execution is not None else None   # async only
        level, message = self.diag.status(
            self.state_label, self.armed, self.holding, self.positions is not None,
            self.last_frame_time is not None, execution.loop.last_hold if stats else None,
            self.backbone_down)
        if stats and stats['control_errors'] > self._control_errors_seen:
            self._control_errors_seen = stats['control_errors']
            self.diag.problem('control tick failed: ' + stats['last_control_error'])
        if stats and 'refused' in stats['control_scheduler'] and not self._told_scheduler:
            self._told_scheduler = True
            self.log('warning', 'control thread: ' + stats['control_scheduler'] + '; grant '
                     'CAP_SYS_NICE or an rtprio limit, or set control_priority: 0')
        values = self.diag.values(report, stats)
        self.diag_pub.publish(diagnostic_array(self, 'aura_ros: policy', level, message,
                                               values))


def spin(node):
    """Until Ctrl-C, ROS shutdown or the lifecycle shutdown transition (then exit 0)."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    while node.context.ok() and not node.finished:
        executor.spin_once(timeout_sec=0.1)


def main(args=None):
    return run_node(PolicyNode, spin, args, close=PolicyNode._stop_execution, exit_process=True)


if __name__ == '__main__':
    sys.exit(main())
