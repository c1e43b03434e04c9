"""What the policy node does between its inputs and its outputs, without rclpy: the loaded
runner, the execution (control/execution.py), the one armed state, the measured joint
positions, the frame watchdog, the services' effects, the failure bookkeeping and the report.
policy_node.py is the ROS shell around it (lifecycle, parameters, topics, services, clock).

The node hands in its live parameter dict ``p`` (updated by its parameter callback), its
diagnostics (counters, rates, problems), a logger and a throttled log, and two outputs:
``send(positions)`` (a joint command) and ``gate_event(frame, step)``.
"""
import threading
import time

from aura_ros.backbones.base import MAX_INSTRUCTION_CHARS, BackboneUnavailable
from aura_ros.control.execution import ExecutionConfig, make_execution
from aura_ros.control.limits import NoJointStates
from aura_ros.control.loop import Arming
from aura_ros.nodes.policy_messages import BadInput, frame_image, joint_positions, memory_report


class PolicySession:
    def __init__(self, p, diag, logger, log, send, gate_event, clock, alive=lambda: True):
        """``clock()``: the node clock in seconds (frame stamps are on it); ``alive()``: False
        once the process is shutting down (a failing step then is not a fault)."""
        self.p, self.diag, self.counts = p, diag, diag.counts
        self.logger, self.log = logger, log       # log(level, message): throttled
        self.send, self.gate_event, self.clock, self.alive = send, gate_event, clock, alive
        self.lock = threading.RLock()              # runner state: worker vs services/watchdog
        self.arming = Arming(p['start_armed'])     # the armed state, kept across activations
        self.runner = self.execution = self.durable = None
        self.positions, self.positions_time = None, 0.0   # latest valid joint positions
        self.last_frame_time, self.holding = None, False
        self.backbone_down = None                  # why the backbone does not answer
        self.instruction = ''
        self.newest_stamp = 0.0                    # newest frame stamp received so far
        self._control_errors_seen, self._told_scheduler = 0, False

    @property
    def armed(self):
        return self.arming.armed

    # ---- loading, parameters, execution ---------------------------------------------------
    def load(self, base_dir):
        """Backbone, memory, limits (and the durable snapshot); returns what was loaded."""
        from aura_ros.policy import load_runner
        self.runner, loaded = load_runner(self.p, base_dir)
        try:
            self.apply_parameters(set(self.p))
            if self.runner.memory is not None and self.p['memory.durable']:
                from aura_ros.nodes.durable import DurableMemory
                path = DurableMemory.snapshot_path(self.p['memory.snapshot_path'], base_dir)
                self.durable = DurableMemory(path, self.runner.memory, self.logger, self.counts)
                self.durable.restore()
        except BaseException:
            self.unload()
            raise
        return loaded

    def unload(self):
        self.stop()
        if self.runner is not None:
            self.runner.backbone.close()
        self.runner = self.durable = self.backbone_down = None

    def apply_parameters(self, names):
        """Changed parameters reach what uses them (``self.p`` already holds the values)."""
        p = self.p
        if self.execution is not None and names & set(ExecutionConfig.PARAMETERS):
            self.execution.configure(**ExecutionConfig.from_params(p).runtime())
        if self.runner is not None:
            with self.lock:
                self.runner.limits.set_rates(p['command.max_delta'], p['command.max_velocity'])
                self.runner.memory_enabled = p['memory.enabled']
                if self.runner.memory is not None:
                    self.runner.memory.set_gate_threshold(p['memory.gate_threshold'])

    def start(self):
        self._control_errors_seen, self._told_scheduler = 0, False
        self.last_frame_time, self.holding = None, False   # watch frames from now on
        self.execution = make_execution(
            ExecutionConfig.from_params(self.p), self.runner, self.send, self.fresh_positions,
            on_step=self._after_step, on_error=self._step_failed, lock=self.lock,
            instruction=lambda: self.instruction or self.p['instruction'], arming=self.arming)

    def stop(self):
        """Stop inference and control (each waits at most 1 s for a step in progress)."""
        execution, self.execution = self.execution, None
        if execution is not None:
            execution.stop()

    # ---- inputs ----------------------------------------------------------------------------
    def frame(self, msg, stamp):
        """A frame (``stamp``: its header stamp in s, on the node clock)."""
        self.counts['frames'] += 1
        self.last_frame_time = time.monotonic()
        self.diag.frame_rate.tick()
        if stamp < self.newest_stamp:
            self.counts['stale_frames_used'] += 1   # a newer frame was already here
        self.newest_stamp = max(self.newest_stamp, stamp)
        execution = self.execution
        if execution is None:
            return
        if not self.armed:
            self.counts['disarmed_frames'] += 1
            return
        try:
            image = frame_image(msg, self.p['backbone.image_size'])
        except BadInput as exc:
            self.counts['bad_frames'] += 1
            self.diag.problem(f'bad frame {msg.width}x{msg.height} {msg.encoding}')
            self.log('warning', str(exc))
            return
        age = self.clock() - stamp
        obs_time = time.monotonic() - min(max(age, 0.0), 1.0)   # the frame's time, our clock
        dropped = execution.dropped
        execution.submit(image, obs_time, context=msg)
        self.counts['skipped_frames'] += execution.dropped - dropped   # replaced unprocessed

    def joint_state(self, msg):
        try:
            positions = joint_positions(msg, self.p['command.joint_names'])
        except BadInput as exc:
            self.counts['bad_joint_states'] += 1
            self.log('warning', str(exc))
            return
        self.positions, self.positions_time = positions, time.monotonic()

    def fresh_positions(self):
        """The newest joint positions, or None when older than joint_state_timeout."""
        positions = self.positions
        if (positions is None
                or time.monotonic() - self.positions_time > self.p['joint_state_timeout']):
            return None
        return positions

    def set_instruction(self, text):
        if len(text) > MAX_INSTRUCTION_CHARS:
            self.counts['bad_instructions'] += 1
            self.diag.problem(f'instruction of {len(text)} characters ignored')
            self.logger.warning(f'ignored instruction of {len(text)} characters '
                                f'(limit {MAX_INSTRUCTION_CHARS})')
            return
        self.instruction = text.strip()
        self.logger.info(f'instruction: {self.instruction!r}')

    def clock_jumped(self):
        """Frames stamped on a new clock are not stale because an older clock ran further."""
        self.counts['clock_jumps'] += 1
        self.newest_stamp = 0.0

    # ---- the execution's callbacks (worker thread, runner lock held) -----------------------
    def _after_step(self, msg, chunk, step):
        """One memory step was taken for frame ``msg`` (its command, if any, already sent)."""
        if self.backbone_down is not None:
            self.backbone_down = None
            self.logger.warning('backbone answers again: resuming')
        if step.wrote and self.durable is not None:   # storage writes = gate writes
            self.save_snapshot()
        self.holding = False
        self.counts['steps'] += 1
        self.gate_event(msg, step)
        if step.rejected:
            self.counts['invalid_actions'] += 1
            self.diag.problem(f'command withheld: {step.rejected}')
            self.log('warning', f'command withheld: {step.rejected}')
        stamp = msg.header.stamp
        self.diag.step_done(step.total_ms,
                            1e3 * (self.clock() - (stamp.sec + stamp.nanosec * 1e-9)))

    def _step_failed(self, msg, exc):
        """A step raised: nothing was commanded for this frame. Told apart by type: stale
        joint states, a backbone outage (frames lost to it), or a bug."""
        if not self.alive():          # shutting down (SIGINT): not a fault
            return
        if isinstance(exc, BackboneUnavailable):
            self.counts['backbone_unavailable'] += 1
            if self.backbone_down is None:
                self.logger.error(f'backbone unavailable: holding position until it answers '
                                  f'({exc})')
            self.backbone_down = str(exc)
            return
        if isinstance(exc, NoJointStates):
            counter, level, message = ('refused_no_joint_states', 'warning', 'no fresh joint '
                                       f"states on {self.p['joint_states_topic']}: not "
                                       'commanding')
        else:
            counter, level, message = ('step_errors', 'error',
                                       f'policy step failed: {type(exc).__name__}: {exc}')
        self.counts[counter] += 1
        self.diag.problem(message)
        self.log(level, message)

    def save_snapshot(self):
        self.durable.save(lambda message: self.log('error', message))

    # ---- watchdog and services -------------------------------------------------------------
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
        self.logger.warning(f'no frames for {silent:.2f} s: holding position, commands stopped '
                            f'until frames resume')

    def reset(self):
        """New episode: (ok, message)."""
        with self.lock:
            if self.runner is None:
                return False, 'not configured'
            if self.execution is not None:   # also drops frames and chunks of the old episode
                self.execution.reset()
            else:
                self.runner.reset()
            if self.durable is not None:
                self.save_snapshot()
        return True, 'memory reset'

    def arm(self):
        """Start commanding, from the measured positions (no jump from an old command)."""
        with self.lock:
            if self.runner is None:
                return False, 'not configured'
            self.last_frame_time, self.holding = None, False   # watch frames from now on
            if self.execution is not None:
                self.execution.arm()
            else:
                self.arming.armed = True
                self.runner.forget_commands()
        self.logger.info('armed: commanding on ' + self.p['command.topic'])
        return True, 'armed'

    def disarm(self):
        """Stop commanding: one hold command (the measured positions), then nothing."""
        with self.lock:
            if self.execution is not None:
                held = self.execution.disarm()
            else:
                self.arming.armed, held = False, None
        self.logger.info('disarmed: holding position, commands stopped')
        return True, 'disarmed' + ('' if held is not None else ' (no hold command sent: no '
                                   'fresh joint states, or not active)')

    # ---- report and status -----------------------------------------------------------------
    def report(self, state):
        return memory_report(self.runner.memory if self.runner else None, self.durable,
                             state=state, armed=self.armed, execution=self.p['execution'],
                             counts=dict(self.counts))

    def status(self, state, report):
        """(level, message, values) of /diagnostics for a configured node."""
        execution = self.execution
        stats = execution.stats() if execution is not None else None   # async only
        level, message = self.diag.status(
            state, self.armed, self.holding, self.positions is not None,
            self.last_frame_time is not None, execution.loop.last_hold if stats else None,
            self.backbone_down)
        if stats and stats['control_errors'] > self._control_errors_seen:
            self._control_errors_seen = stats['control_errors']
            self.diag.problem('control tick failed: ' + stats['last_control_error'])
        if execution is not None and execution.scheduler_refused and not self._told_scheduler:
            self._told_scheduler = True
            self.log('warning', 'control thread: ' + stats['control_scheduler'] + '; grant '
                     'CAP_SYS_NICE or an rtprio limit, or set control_priority: 0')
        return level, message, self.diag.values(report, stats)
