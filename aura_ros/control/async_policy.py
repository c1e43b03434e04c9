"""Asynchronous execution of a PolicyRunner: inference on the newest frame in one thread,
commands at the control rate in another. No ROS (the policy node and benchmarks give it
callbacks), no torch import of its own.

    frames --submit--> InferenceWorker --runner.infer_chunk--> TimedChunk --push--> ControlLoop
    control thread, every 1 / control_rate s: ControlLoop.tick(now, positions) --send--> robot

One memory step per processed frame (frames that arrive while inference runs replace each
other; the newest is processed next). Every command passes the ControlLoop's CommandGuard
(control/limits.py): armed only, finite, within the joint limits, max_delta and max_velocity x
period of the previous command (of the measured positions after a hold); without an executable
chunk nothing is sent (the controller holds its last goal). The interface is
``control.execution``'s (the node drives either execution the same way).

The control thread shares the interpreter lock with the worker's Python-heavy inference; at
CPython's default switch interval (5 ms) a tick can wait that long for it, so AsyncPolicy
lowers the process's interval to ``gil_switch_interval`` (1 ms) if it is higher. A full
collection of the cyclic garbage collector holds the lock while it scans every object, the
loaded models' included; ``freeze_gc`` (default on) moves the objects alive when the policy
starts (the models) out of the collector's reach (``gc.freeze``), so later collections scan
only what inference allocates; ``stop`` unfreezes them (a cleaned-up model can be collected).

The operating system's scheduler is the other source of late ticks: on a machine whose cores
are busy (inference, the rest of the robot) a waking control thread waits for a core, by up
to the scheduler's slice (a few ms). ``control_priority`` > 0 runs the control thread under
SCHED_FIFO at that priority, as robot control loops do (ros2_control's controller manager
does the same): it preempts ordinary threads when it wakes. It needs CAP_SYS_NICE or an
rtprio limit (``ulimit -r``, limits.conf); where refused, the thread keeps the normal
scheduler and ``stats()['control_scheduler']`` says why.
"""
import gc
import os
import sys
import threading
import time
from collections import deque

import numpy as np

from aura_ros.control.chunks import ChunkExecutor
from aura_ros.control.config import ExecutionConfig
from aura_ros.control.limits import NoJointStates
from aura_ros.control.loop import ControlLoop, InferenceWorker
from aura_ros.control.rates import RateMeter


class AsyncPolicy:
    def __init__(self, runner, send, positions, config=None,
                 on_step=None, on_error=None, lock=None, start_armed=False,
                 instruction=lambda: '', gil_switch_interval=0.001, freeze_gc=True,
                 arming=None):
        """``send(command)`` publishes a (J,) command; ``positions()`` returns the newest
        measured positions (or None); ``config``: rates, chunk transition and priority
        (control.execution.ExecutionConfig); ``on_step(context, chunk, info)`` runs after each
        inference (gate events, snapshots), ``on_error(context, exc)`` after one that raised;
        ``lock`` guards the runner against other users (services resetting the memory);
        ``instruction()`` is the current task text."""
        self.runner, self.send, self.positions = runner, send, positions
        self.instruction = instruction
        self.on_step = on_step or (lambda *_: None)
        self.on_error = on_error or (lambda *_: None)
        self.lock = lock or threading.Lock()
        self.config = config = config if config is not None else ExecutionConfig('async')
        self.action_period = float(config.action_period)
        self.control_priority = int(config.control_priority)
        self.control_scheduler = 'SCHED_OTHER'
        self.scheduler_refused = None         # the OSError when SCHED_FIFO was refused
        if gil_switch_interval and sys.getswitchinterval() > gil_switch_interval:
            sys.setswitchinterval(gil_switch_interval)
        self._froze_gc = bool(freeze_gc)
        if freeze_gc:
            gc.collect()
            gc.freeze()
        self.loop = ControlLoop(ChunkExecutor(config.transition, config.blend_s,
                                              config.ensemble_decay, config.max_age_s,
                                              config.open_loop_steps),
                                runner.limits, 1.0 / config.control_rate, start_armed,
                                arming)
        self.periods = deque(maxlen=2000)     # measured control periods (s)
        self.inference_rate, self.command_rate = RateMeter(), RateMeter()
        self.late_ticks = 0
        self.control_errors, self.last_control_error = 0, ''   # ticks that raised (counted)
        self._send_lock = threading.Lock()   # a tick's command never follows disarm's hold
        self._stop = threading.Event()
        self.epoch = 0                       # reset() count: older chunks are not executed
        self.worker = InferenceWorker(self._infer, self._deliver)
        self.thread = threading.Thread(target=self._control, name='aura-control', daemon=True)
        self.thread.start()

    # ---- settings and arming ---------------------------------------------------------------
    def configure(self, **changes):
        """Run-time changes of ``ExecutionConfig.RUNTIME`` fields; ValueError (with the
        reason) leaves everything unchanged. Returns the new config."""
        if set(changes) - set(ExecutionConfig.RUNTIME):
            raise ValueError(f'cannot change {sorted(set(changes) - set(ExecutionConfig.RUNTIME))}'
                             f' of a running execution')
        config = self.config.replace(**changes)          # validated
        with self.loop.lock:
            self.loop.executor.configure(config.transition, config.blend_s,
                                         config.ensemble_decay, config.max_age_s,
                                         config.open_loop_steps)
            self.loop.period = 1.0 / float(config.control_rate)
            self.config = config
        return config

    def arm(self):
        self.loop.arm()

    def disarm(self):
        """Stop commanding; the one hold command (measured positions) is sent."""
        with self._send_lock:
            held = self.loop.disarm(self.positions())
            if held is not None:
                self.send(held)
        return held

    def frames_stopped(self):
        """The watchdog: the control loop holds by itself once the newest chunk is older
        than ``max_age`` (nothing to send here)."""
        return None

    @property
    def armed(self):
        return self.loop.armed

    @property
    def dropped(self):
        """Frames replaced by a newer one before they were processed."""
        return self.worker.dropped

    @property
    def inference_failing(self):
        """The exception the inference raised since its last success (None: working)."""
        return self.worker.failing

    def reset(self, episode_seed=None):
        """New episode: the memory and the noise schedule reset (``runner.reset``), pending
        frames and chunks dropped (a chunk still being inferred from the old episode is not
        executed), and the next command starts from the measured positions."""
        with self.lock:
            self.epoch += 1
            self.worker.discard_pending()
            self.runner.reset(episode_seed)
            self.loop.restart()

    # ---- inference ---------------------------------------------------------------------------
    def submit(self, image, obs_time, context=None, positions=None):
        """A frame (H, W, 3 uint8) seen at ``obs_time`` (time.monotonic clock) with the joint
        positions measured then (None: the provider's newest; none fresh: ``on_error`` gets
        NoJointStates and nothing is inferred). Never blocks. A frame the chunk transition does
        not ask for (``ChunkExecutor.admit``: the peers' transitions ask for chunks the way
        their clients do) is not inferred."""
        if positions is None:
            positions = self.positions()
        if positions is None:
            self.on_error(context, NoJointStates('no fresh joint states: not commanding'))
            return
        if not self.loop.admit(time.monotonic()):
            return
        self.worker.submit((image, positions, obs_time, context))

    def _infer(self, observation):
        image, positions, obs_time, context = observation
        with self.lock:
            try:
                chunk, info = self.runner.infer_chunk(image, positions, obs_time,
                                                      self.action_period, self.instruction())
                self.on_step(context, chunk, info)
            except Exception as exc:
                self.loop.inference_failed()   # open_loop: no chunk comes, admit the next frame
                self.on_error(context, exc)
                raise                       # the worker counts it and keeps serving
            epoch = self.epoch
        self.inference_rate.tick()
        return epoch, chunk

    def _deliver(self, result):
        epoch, chunk = result
        with self.lock:        # a reset() between inference and delivery drops the chunk
            if epoch == self.epoch:
                self.loop.push(chunk, time.monotonic())

    # ---- control -----------------------------------------------------------------------------
    def _set_priority(self):
        """SCHED_FIFO for the calling (control) thread if asked and permitted."""
        if not self.control_priority:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.control_priority))
            self.control_scheduler = f'SCHED_FIFO {self.control_priority}'
        except (OSError, AttributeError) as exc:   # EPERM without CAP_SYS_NICE / rtprio
            self.scheduler_refused = exc
            self.control_scheduler = (f'SCHED_OTHER (SCHED_FIFO {self.control_priority} '
                                      f'refused: {exc})')

    def _control(self):
        self._set_priority()
        last = next_t = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            self.periods.append(now - last)
            last = now
            try:
                q = self.positions()
                with self._send_lock:
                    tick = self.loop.tick(now, q)
                    if tick.command is not None:
                        self.send(tick.command)
                        self.command_rate.tick(now)
            except Exception as exc:  # noqa: BLE001 - a failed tick must not end control
                self.loop.release()    # it may not have been sent: restart from measured
                self.control_errors += 1
                self.last_control_error = f'{type(exc).__name__}: {exc}'
            next_t += self.loop.period
            if next_t < time.monotonic():          # overran a whole period: do not burst
                self.late_ticks += 1
                next_t = time.monotonic() + self.loop.period
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def stop(self, timeout=1.0):
        self._stop.set()
        ok = self.worker.stop(timeout)
        self.thread.join(timeout)
        if self._froze_gc:
            gc.unfreeze()
        return ok and not self.thread.is_alive()

    # ---- diagnostics -------------------------------------------------------------------------
    def stats(self, now=None):
        now = time.monotonic() if now is None else now
        periods = np.array(self.periods) if self.periods else np.zeros(1)
        chunk = self.loop.executor.newest
        target = self.loop.period
        return dict(
            armed=self.armed, control_rate_target_hz=1.0 / target,
            control_rate_hz=self.command_rate.rate(now),
            inference_rate_hz=self.inference_rate.rate(now),
            period_jitter_p99_ms=1e3 * float(np.percentile(np.abs(periods - target), 99)),
            chunk_age_ms=1e3 * (now - chunk.obs_time) if chunk is not None else -1.0,
            skipped_actions=self.loop.executor.skipped, holds=self.loop.holds,
            late_ticks=self.late_ticks, inference_errors=self.worker.errors,
            control_errors=self.control_errors, last_control_error=self.last_control_error,
            control_scheduler=self.control_scheduler,
            last_inference_error=self.worker.last_error,
            inference_ms=1e3 * self.worker.last_latency_s, dropped_frames=self.worker.dropped)
