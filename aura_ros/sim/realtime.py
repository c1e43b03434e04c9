"""The simulated arm on the wall clock (no ROS): what ``sim_arm_node`` runs with
``lockstep: false`` and what the real-time benchmark drives in-process.

Three schedules, absolute (no drift), sleeping in between:
- physics at ``physics_rate``: the joints track the newest command with the per-frame speed
  limit spread over time (``ArmEnv.integrate``);
- joint-state samples at ``joint_state_rate`` (``on_joints(positions, t)``);
- camera frames at ``frame_rate``, the task's clock (``ArmEnv.step(None)``; ``on_frame(frame,
  t)``). A schedule that falls behind skips ahead instead of bursting, like a camera.

``RealtimeTask`` states the task in seconds and converts it to the frame counts of
``ArmTaskConfig`` at the frame rate: ``cue_onset='first'`` (the default, the real-time
benchmark's task: the cue opens the episode, then a delay) or ``'random'`` (task v2: the go
frame drawn from ``go_s`` / ``go_switch_s``, the cue at a random onset before it).
"""
import threading
import time
from dataclasses import dataclass

from aura_ros.sim.arm import ArmTaskConfig


@dataclass
class RealtimeTask:
    variant: str = 'memory'
    cue_s: float = 0.5                 # the cue ring is shown this long after the episode starts
    delay_s: tuple = (0.5, 1.0)        # then a delay (uniform, whole frames) with distractors
    go_timeout_s: float = 2.0          # after go: reach and dwell within this
    dwell_s: float = 0.1               # on one pad, to end the episode
    distractor_rate: float = 0.3       # chance of a distractor flash per delay frame
    frame_rate: float = 30.0
    cue_onset: str = 'first'           # 'random': task v2 (sim/arm.py), timed by the two below
    go_s: tuple = (0.6, 1.0)           # v2: when the lamp turns green (18-30 frames at 30 fps)
    go_switch_s: tuple = (1.0, 1.33)   # v2, memory_switch (30-40 frames at 30 fps)

    def __post_init__(self):
        if not 1.0 <= self.frame_rate <= 240.0:
            raise ValueError(f'frame_rate must be in [1, 240] Hz, got {self.frame_rate}')
        if not 0 < self.delay_s[0] <= self.delay_s[1]:
            raise ValueError(f'delay_s must be (lo, hi) with 0 < lo <= hi, got {self.delay_s}')
        for name in ('cue_s', 'go_timeout_s', 'dwell_s'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')

    def frames(self, seconds):
        return max(1, round(seconds * self.frame_rate))

    def arm_config(self, image_size=64):
        if self.cue_onset == 'random':   # v2: its cue lasts as ArmTaskConfig's (3 frames)
            return ArmTaskConfig(variant=self.variant, image_size=image_size, cue_onset='random',
                                 go=tuple(self.frames(s) for s in self.go_s),
                                 go_switch=tuple(self.frames(s) for s in self.go_switch_s),
                                 distractor_rate=self.distractor_rate,
                                 max_steps_after_go=self.frames(self.go_timeout_s),
                                 dwell_steps=self.frames(self.dwell_s))
        return ArmTaskConfig(variant=self.variant, image_size=image_size, cue_onset='first',
                             cue_steps=self.frames(self.cue_s),
                             delay=(self.frames(self.delay_s[0]), self.frames(self.delay_s[1])),
                             distractor_rate=self.distractor_rate,
                             max_steps_after_go=self.frames(self.go_timeout_s),
                             dwell_steps=self.frames(self.dwell_s))


class RealtimeArm:
    """Runs one ``ArmEnv`` episode in real time. ``command()`` returns the newest joint command
    (or None); ``lock`` guards the env against other threads (e.g. a node's reset)."""

    def __init__(self, env, physics_rate=500.0, joint_state_rate=100.0, frame_rate=30.0,
                 lock=None):
        for name, rate in (('physics_rate', physics_rate),
                           ('joint_state_rate', joint_state_rate), ('frame_rate', frame_rate)):
            if not 1.0 <= rate <= 5000.0:
                raise ValueError(f'{name} must be in [1, 5000] Hz, got {rate}')
        self.env = env
        self.physics_rate, self.joint_state_rate = float(physics_rate), float(joint_state_rate)
        self.frame_rate = float(frame_rate)
        self.lock = lock or threading.Lock()
        self.overruns = 0                  # physics fell > 0.1 s behind and resynchronised

    def run(self, frame, command, on_frame, on_joints, stop):
        """Episode from its first ``frame`` (already reset) until done (True) or ``stop`` is
        set (False). The first frame goes out at once."""
        dt_phys, dt_js, dt_frame = (1 / self.physics_rate, 1 / self.joint_state_rate,
                                    1 / self.frame_rate)
        now = time.monotonic()
        next_phys, next_js, next_frame = now + dt_phys, now, now + dt_frame
        on_frame(frame, now)
        while not stop.is_set():
            now = time.monotonic()
            while next_phys <= now:
                with self.lock:
                    self.env.integrate(command(), dt_phys, self.frame_rate)
                next_phys += dt_phys
                if now - next_phys > 0.1:          # fell far behind: resynchronise
                    self.overruns += 1
                    next_phys = now + dt_phys
            if next_js <= now:
                on_joints(self.env.q, now)
                next_js = max(next_js + dt_js, now)
            if next_frame <= now:
                with self.lock:
                    frame, done = self.env.step(None, physics=False)
                if done:
                    return True
                on_frame(frame, now)
                next_frame = max(next_frame + dt_frame, now)
            stop.wait(max(0.0, min(next_phys, next_js, next_frame) - time.monotonic()))
        return False
