"""The arm on the wall clock: the task stated in seconds becomes frames; an episode driven by
the expert's goal in real time succeeds; stop ends it early; bad rates are refused."""
import threading

import numpy as np
import pytest

from aura_ros.sim.arm import ArmEnv, inverse_kinematics
from aura_ros.sim.realtime import RealtimeArm, RealtimeTask


def test_task_in_seconds_becomes_frame_counts_at_the_frame_rate():
    cfg = RealtimeTask(cue_s=0.5, delay_s=(0.5, 1.0), go_timeout_s=2.0, dwell_s=0.1,
                       frame_rate=30.0).arm_config()
    assert (cfg.cue_steps, cfg.delay, cfg.max_steps_after_go, cfg.dwell_steps) == \
        (15, (15, 30), 60, 3)
    assert RealtimeTask(frame_rate=10.0).arm_config().cue_steps == 5


@pytest.mark.parametrize('bad', [dict(delay_s=(1.0, 0.5)), dict(cue_s=0.0),
                                 dict(frame_rate=0.5)])
def test_invalid_task_is_refused(bad):
    with pytest.raises(ValueError):
        RealtimeTask(**bad)


def test_bad_rate_is_refused_with_its_name():
    with pytest.raises(ValueError, match='physics_rate'):
        RealtimeArm(ArmEnv(), physics_rate=0.0)


def test_expert_goal_in_real_time_succeeds_and_samples_come_on_their_own_clocks():
    task = RealtimeTask(variant='visible', cue_s=0.1, delay_s=(0.1, 0.1), go_timeout_s=2.0)
    env = ArmEnv(task.arm_config())
    frame = env.reset(7)
    goal = inverse_kinematics(env.episode.pads[env.episode.target])
    frames, joints = [], []
    arm = RealtimeArm(env, physics_rate=500.0, joint_state_rate=100.0, frame_rate=30.0)
    done = arm.run(frame, lambda: goal, lambda f, t: frames.append(t),
                   lambda q, t: joints.append((t, q.copy())), threading.Event())
    assert done and env.success
    assert len(joints) > 2 * len(frames)          # joint states faster than frames
    assert np.all(np.diff(frames) > 0)            # (the rates: bench realtime / mujoco)
    steps = np.abs(np.diff([q for _, q in joints], axis=0)).max()
    assert steps <= 0.15 * 30.0 * 0.05            # spread over time, no per-frame jumps


def test_stop_ends_the_episode_early():
    env = ArmEnv(RealtimeTask().arm_config())
    stop = threading.Event()
    stop.set()
    assert RealtimeArm(env).run(env.reset(0), lambda: None, lambda f, t: None,
                                lambda q, t: None, stop) is False
