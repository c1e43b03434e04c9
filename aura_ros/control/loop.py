"""The control tick of asynchronous execution, and the worker that feeds it. No ROS.

``ControlLoop.tick(now, positions)`` runs once per control period. Every command passes its
``CommandGuard`` (control/limits.py: the rule, stated once), whatever the inference worker does:

* disarmed: nothing is commanded (None); ``disarm`` returns one hold command (the measured
  positions) so the arm stops where it is;
* armed: the executor's command at ``now``, within ``max_delta`` and ``max_velocity * period``
  of the previous command (of the measured positions after a hold), inside the joint limits;
* when the executor holds (no chunk, stale, ran out) nothing is sent (the controller holds its
  last goal), the hold is counted with its reason, and the next command starts from the
  measured positions;
* never a NaN: missing or non-finite measured positions give no command at all.

``InferenceWorker`` runs ``infer(observation) -> TimedChunk`` on the newest observation in a
thread of its own (older unprocessed observations are dropped: one memory step per processed
observation), hands each chunk to the loop, and counts failures without stopping.
"""
import threading
import time
from dataclasses import dataclass

import numpy as np

from aura_ros.control.chunks import ChunkExecutor, TimedChunk
from aura_ros.control.limits import CommandGuard


@dataclass
class Tick:
    command: np.ndarray | None   # (J,) joint positions to send, None = send nothing
    held: bool = False           # holding: no executable chunk (nothing sent)
    reason: str = ''             # why it holds / sends nothing


class Arming:
    """The one armed state of a policy. The executions read and change it (their locks order
    the changes); it outlives them, so deactivate/activate keeps it."""

    def __init__(self, armed=False):
        self.armed = bool(armed)


class ControlLoop:
    def __init__(self, executor: ChunkExecutor, limits, period, start_armed=False,
                 arming=None):
        self.executor, self.limits = executor, limits
        self.guard = CommandGuard(limits, float(period))
        self.arming = arming if arming is not None else Arming(start_armed)
        self.last_target = None        # the executor's value before the limits (None: held)
        self.lock = threading.Lock()   # the worker pushes chunks from its own thread
        self.holds = 0                 # ticks that held position while armed
        self.last_hold = (-1e9, '')    # (time, reason) of the latest hold

    @property
    def armed(self):
        return self.arming.armed

    @property
    def period(self):
        return self.guard.period

    @period.setter
    def period(self, value):
        self.guard.period = float(value)

    @property
    def last_command(self):
        """The last command sent (None after a hold)."""
        return self.guard.previous

    def push(self, chunk: TimedChunk, now):
        """A new chunk from the worker; returns the actions skipped (latency compensation)."""
        with self.lock:
            return self.executor.push(chunk, now)

    def admit(self, now):
        """Whether a frame seen at ``now`` should be inferred (``ChunkExecutor.admit``)."""
        with self.lock:
            return self.executor.admit(now)

    def inference_failed(self):
        """The admitted frame gave no chunk (``ChunkExecutor.inference_failed``)."""
        with self.lock:
            self.executor.inference_failed()

    def arm(self):
        with self.lock:
            self.arming.armed = True
            self.guard.release()

    def restart(self):
        """New episode: no chunk, and the next command starts from the measured positions."""
        with self.lock:
            self.executor.clear()
            self.guard.release()

    def release(self):
        """A command may not have reached the arm (a failed send): the next one starts from
        the measured positions."""
        with self.lock:
            self.guard.release()

    def disarm(self, positions):
        """Stop commanding; returns the one hold command to send (or None)."""
        with self.lock:
            self.arming.armed = False
            self.executor.clear()
            return self.guard.hold(positions)

    def tick(self, now, positions):
        """The command at ``now`` given the measured ``positions`` (None: none fresh)."""
        with self.lock:
            if not self.armed:
                return Tick(None, reason='disarmed')
            if self.limits.measured(positions) is None:
                self.guard.release()
                return Tick(None, reason='joint positions missing or not finite')
            target, reason = self.executor.sample(now)
            self.last_target = target
            if target is None:
                self.holds += 1
                self.last_hold = (now, reason)
                self.guard.release()
                return Tick(None, held=True, reason=reason)
            return Tick(self.guard.command(target, positions))


class InferenceWorker:
    """Runs ``infer`` on the newest observation in a thread; ``deliver(chunk)`` gets each
    result. ``submit`` never blocks: an observation not yet taken is replaced by a newer one."""

    def __init__(self, infer, deliver, name='aura-inference'):
        self.infer, self.deliver = infer, deliver
        self.cond = threading.Condition()
        self.pending, self.stopped = None, False
        self.processed = self.dropped = self.errors = 0
        self.last_error = ''
        self.failing = None            # the exception raised since the last success (or None)
        self.last_latency_s = 0.0
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def discard_pending(self):
        """Drop the observation not yet taken (an inference already running finishes)."""
        with self.cond:
            self.pending = None

    def submit(self, observation):
        with self.cond:
            if self.pending is not None:
                self.dropped += 1
            self.pending = observation
            self.cond.notify()

    def _run(self):
        while True:
            with self.cond:
                while self.pending is None and not self.stopped:
                    self.cond.wait()
                if self.stopped:
                    return
                observation, self.pending = self.pending, None
            start = time.monotonic()
            try:
                chunk = self.infer(observation)
            except Exception as exc:  # noqa: BLE001 - count, report, keep serving
                self.errors += 1
                self.last_error = f'{type(exc).__name__}: {exc}'
                self.failing = exc
                continue
            self.failing = None
            self.last_latency_s = time.monotonic() - start
            self.processed += 1
            if chunk is not None:
                self.deliver(chunk)

    def stop(self, timeout=1.0):
        with self.cond:
            self.stopped = True
            self.cond.notify()
        self.thread.join(timeout)
        return not self.thread.is_alive()
