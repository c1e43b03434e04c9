"""The real-time arm in a process of its own: the expert's goal sent as the command succeeds,
frames and joint samples come back on their clocks, no command leaves the arm where it is,
and the child ends when the parent closes it (or when the parent's end of the socket goes)."""
import time

import numpy as np
import pytest

from aura_ros.sim.arm import HOME, ArmEnv, inverse_kinematics
from aura_ros.sim.process import SimProcess, _Shared
from aura_ros.sim.realtime import RealtimeTask

TASK = RealtimeTask(variant='visible', cue_s=0.1, delay_s=(0.1, 0.1), go_timeout_s=1.0)


def goal_of(seed):
    env = ArmEnv(TASK.arm_config())
    env.reset(seed)
    return inverse_kinematics(env.episode.pads[env.episode.target])


def test_commanded_goal_succeeds_frames_and_samples_come_back_in_real_time():
    sim = SimProcess(TASK)
    try:
        goal, frames, ready = goal_of(7), [], []

        def on_frame(frame, q, t):
            frames.append((t, frame, q))
            sim.set_command(goal)

        start = time.monotonic()
        success, times, samples = sim.episode(7, ready.append, on_frame)
        wall = time.monotonic() - start
        assert success and ready[0] == pytest.approx(HOME)
        t = np.array([f[0] for f in frames])
        assert frames[0][1].shape == (64, 64, 3) and frames[0][1].dtype == np.uint8
        assert np.all(np.diff(t) > 0) and t[-1] - t[0] == pytest.approx(
            (len(t) - 1) / 30.0, rel=0.25)                       # 30 Hz on the wall clock
        assert wall >= t[-1] - t[0]
        assert len(samples) > 2 * len(frames) and samples.shape[1] == len(HOME)
        assert sim.positions() == pytest.approx(samples[-1])    # shared with the parent
        assert np.abs(np.diff(samples, axis=0)).max() <= 0.15 * 30.0 * 0.05
        # a second episode with no command: the arm never leaves home, times out
        success, _, samples = sim.episode(8, lambda q: None, lambda *a: None)
        assert not success and np.allclose(samples, HOME)
        assert sim.cpu_s() > 0
    finally:
        sim.close()
    assert sim.proc.returncode is not None


def test_child_exits_when_the_parent_socket_closes():
    sim = SimProcess(TASK)
    sim._conn.close()
    assert sim.proc.wait(5) == 0
    with pytest.raises(RuntimeError, match='sim process exited'):
        sim._recv()


def test_shared_slots_read_back_what_was_written(tmp_path):
    import os
    fd = os.memfd_create('t')
    os.ftruncate(fd, 8 * 16)
    a, b = _Shared(fd), _Shared(fd)           # two mappings of one region
    a.write(0, [1.0, 2.0, 3.0])
    assert b.read(0, 3) == pytest.approx([1.0, 2.0, 3.0]) and b.a[0] % 2 == 0
    a.close(), b.close()
    os.close(fd)
