"""How a PolicyRunner drives the arm: one interface, two executions. No ROS, no torch import.

    execution = make_execution(ExecutionConfig(kind='sync' | 'async', ...), runner, send,
                               positions, ...)
    execution.submit(image, obs_time, context)     # every usable frame
    execution.arm() / disarm() / frames_stopped() / reset(seed) / stop()

``SyncExecution`` (``execution: sync``): the newest frame -> one ``PolicyRunner.step`` -> its
command, in a worker thread (a newer frame replaces an unprocessed one: no backlog). One command
per processed frame; its period is the inference period.
``AsyncPolicy`` (``execution: async``, control/async_policy.py): the newest frame -> one
time-stamped chunk; a control thread commands from the chunks at ``control_rate``.

What both promise (the node, the benchmarks and the tests rely on it):

* **One armed state**, here. Disarmed: no memory step, nothing commanded; ``disarm`` sends one
  hold command (the measured positions) and then nothing.
* **Every command passes the CommandGuard** (control/limits.py): after any hold (frames stopped,
  disarm/arm, a new execution after deactivate/activate, a failed step, stale joint states) the
  first command is within one step of the measured positions; every other within one step of
  the previous command.
* **Measured positions come from one place**, the ``positions()`` provider (None: none fresh):
  sync execution reads them when it takes the frame (the freshest for its command), async
  execution with the frame (its chunk is predicted from that observation; its control loop
  reads them again at every tick). Without them a step raises ``NoJointStates`` (nothing is
  commanded).
* **One memory step per processed frame**; ``on_step(context, chunk, step)`` runs after it
  (gate events, snapshots), ``on_error(context, exc)`` after a step that raised (typed: the
  caller tells stale joint states or a backbone outage from a bug by the exception's class).
  A step that raised commands nothing; sync execution sends one hold command (the measured
  positions) when steps start failing, async execution keeps executing the current chunk
  until it is older than its ``max_age`` and then holds by itself.
* ``frames_stopped`` (the node's watchdog): sync sends one hold command; async holds by itself.
"""
import threading

from aura_ros.control.async_policy import AsyncPolicy
from aura_ros.control.config import EXECUTIONS, ExecutionConfig
from aura_ros.control.limits import NoJointStates
from aura_ros.control.loop import Arming, InferenceWorker

__all__ = ['EXECUTIONS', 'ExecutionConfig', 'SyncExecution', 'make_execution']

class SyncExecution:
    scheduler_refused = None           # async only: why SCHED_FIFO was refused

    def __init__(self, runner, send, positions, on_step=None, on_error=None, lock=None,
                 start_armed=False, instruction=lambda: '', arming=None):
        """``send(command)`` publishes a (J,) command; ``positions()``: the newest measured
        positions (None when stale); ``lock`` guards the runner against its other users;
        ``arming``: the armed state to share (control.loop.Arming; default: a new one at
        ``start_armed``)."""
        self.runner, self.send, self.positions = runner, send, positions
        self.on_step = on_step or (lambda *_: None)
        self.on_error = on_error or (lambda *_: None)
        self.instruction = instruction
        self.lock = lock or threading.RLock()
        self.arming = arming if arming is not None else Arming(start_armed)
        self.epoch = 0                 # reset() count: a step of the old episode sends nothing
        self.failing = None            # the exception of the last step (None: it worked)
        self.obs_time = None           # observation time of the step being executed
        with self.lock:
            runner.forget_commands()   # a new execution starts from the measured positions
        self.worker = InferenceWorker(self._step, lambda _: None)

    @property
    def armed(self):
        return self.arming.armed

    @property
    def dropped(self):
        """Frames replaced by a newer one before they were processed."""
        return self.worker.dropped

    def submit(self, image, obs_time, context=None, positions=None):
        """A frame (H, W, 3 uint8) seen at ``obs_time``. Never blocks. (``positions`` measured
        with the frame are not used: the step reads the freshest when it runs.)"""
        self.worker.submit((image, obs_time, context, self.epoch))

    def _step(self, observation):
        image, obs_time, context, epoch = observation
        with self.lock:
            if not self.arming.armed or epoch != self.epoch:
                return None
            self.obs_time = obs_time
            try:
                positions = self.positions()
                if positions is None:
                    raise NoJointStates('no fresh joint states: not commanding')
                step = self.runner.step(image, positions, self.instruction())
            except Exception as exc:  # noqa: BLE001 - the caller is told; the loop goes on
                if self.failing is None:          # steps start failing: hold once
                    held = self.runner.hold(self.positions())
                    if held is not None:
                        self.send(held)
                self.failing = exc
                self.on_error(context, exc)
                return None
            self.failing = None
            if step.command is not None:
                self.send(step.command)
            self.on_step(context, None, step)
        return None

    def arm(self):
        """Start commanding, from the measured positions."""
        with self.lock:
            self.arming.armed = True
            self.runner.forget_commands()

    def disarm(self):
        """Stop commanding: the one hold command (measured positions, None without them) is
        sent and returned; no memory step until armed again."""
        with self.lock:
            self.arming.armed = False
            held = self.runner.hold(self.positions())
            if held is not None:
                self.send(held)
        return held

    def frames_stopped(self):
        """The watchdog: frames stopped. One hold command (the measured positions), then
        nothing until frames resume (from the measured positions then)."""
        with self.lock:
            if not self.arming.armed:
                return None
            held = self.runner.hold(self.positions())
            if held is not None:
                self.send(held)
        return held

    def reset(self, episode_seed=None):
        """New episode: memory and noise schedule reset, the pending frame dropped, the next
        command from the measured positions."""
        self.epoch += 1                 # frames submitted before: no step (checked first)
        self.worker.discard_pending()
        with self.lock:                 # a step in flight finishes first
            self.runner.reset(episode_seed)

    def configure(self, **_):
        """Async settings (control rate, transitions) do not apply to sync execution."""

    def stats(self):
        return None

    @property
    def inference_failing(self):
        return self.failing

    def stop(self, timeout=1.0):
        return self.worker.stop(timeout)


def make_execution(config: ExecutionConfig, runner, send, positions, on_step=None,
                   on_error=None, lock=None, start_armed=False, instruction=lambda: '',
                   arming=None, **async_options):
    """The execution ``config.kind`` names ('sync' or 'async'), started. ``arming``: the armed
    state it shares (control.loop.Arming; default: a new one at ``start_armed``);
    ``async_options`` (gil_switch_interval, freeze_gc) go to AsyncPolicy."""
    if config.kind == 'sync':
        return SyncExecution(runner, send, positions, on_step, on_error, lock, start_armed,
                             instruction, arming)
    return AsyncPolicy(runner, send, positions, config, on_step=on_step, on_error=on_error,
                       lock=lock, start_armed=start_armed, instruction=instruction,
                       arming=arming, **async_options)
