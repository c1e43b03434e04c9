"""Closed-loop episodes of a PolicyRunner on the simulated arm, in-process (no ROS).

The same control step as the policy node (PolicyRunner), the same sim as sim_arm_node. Each
step is logged with the ground-truth kind of the frame the policy saw (``ArmEnv.frame_kind``:
pre_cue, cue_onset, cue_continued, reshown_cue, switch_cue, distractor, delay, go).
"""
from dataclasses import dataclass, field

import numpy as np

from aura_ros.control.limits import CommandLimits
from aura_ros.sim.arm import JOINT_LOWER, JOINT_UPPER, ArmEnv


def sim_limits(max_delta=0.15, env=None):
    """The command limits a sim arm is configured with (config/default.yaml for the planar
    arm; ``env``: that arm's joint limits)."""
    if env is None:
        return CommandLimits(JOINT_LOWER, JOINT_UPPER, max_delta, 'delta')
    return CommandLimits(env.lower, env.upper, max_delta, 'delta')


@dataclass
class EpisodeLog:
    seed: int
    success: bool
    steps: int
    writes: int
    state_bytes_max: int
    target: int
    reached: int
    wrote: list = field(default_factory=list)        # per step
    gate_probability: list = field(default_factory=list)
    kinds: list = field(default_factory=list)        # the frame's ground-truth kind per step
    memory_ms: list = field(default_factory=list)
    backbone_ms: list = field(default_factory=list)


def run_episode(env: ArmEnv, runner, seed, instruction='', record=None, before_step=None):
    """One episode; ``before_step(env, frame)`` is called before every control step (a forced
    write schedule looks at the frame or the ground truth there), ``record(env, frame, step)``
    after it."""
    frame = env.reset(seed)
    runner.reset(episode_seed=seed)
    log = EpisodeLog(seed, False, 0, 0, 0, env.episode.target, -1)
    done = False
    while not done:
        kind = env.frame_kind
        if before_step is not None:
            before_step(env, frame)
        step = runner.step(frame, env.q, instruction)
        if record is not None:
            record(env, frame, step)
        log.wrote.append(bool(step.wrote))
        log.gate_probability.append(float(step.gate_probability))
        log.kinds.append(kind)
        log.memory_ms.append(step.memory_ms)
        log.backbone_ms.append(step.backbone_ms)
        if runner.memory is not None:
            log.state_bytes_max = max(log.state_bytes_max, runner.memory.state_bytes())
        frame, done = env.step(step.command)
    log.success, log.steps, log.reached = bool(env.success), env.t, env.reached
    log.writes = int(np.sum(log.wrote))
    return log
