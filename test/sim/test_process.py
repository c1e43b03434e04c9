"""The real-time arm in a process of its own: the expert's goal sent as the command succeeds,
frames and joint samples come back on their clocks, no command leaves the arm where it is,
and the child ends when the parent closes it (or when the parent's end of the socket goes)."""
import os
import signal
import subprocess
import sys
import threading
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
        # 30 Hz on the wall clock (the median: a loaded machine may stretch a few intervals)
        assert np.all(np.diff(t) > 0)
        assert np.median(np.diff(t)) == pytest.approx(1 / 30.0, abs=0.006)
        assert wall < t[-1] - t[0] + 2.0                         # no waiting around it
        assert len(samples) > 2 * len(frames) and samples.shape[1] == len(HOME)
        assert sim.positions() == pytest.approx(samples[-1])    # shared with the parent
        # continuous motion at the arm's speed (4.5 rad/s) between samples, by their stamps
        allowed = 0.15 * 30.0 * (np.diff(times) + 2 / 500.0) + 1e-6
        assert (np.abs(np.diff(samples, axis=0)).max(axis=1) <= allowed).all()
        # a second episode with no command: the arm never leaves home, times out
        success, _, samples = sim.episode(8, lambda q: None, lambda *a: None)
        assert not success and np.allclose(samples, HOME)
        assert sim.cpu_s() > 0
    finally:
        sim.close()
    assert sim.proc.returncode is not None


ORPHAN = """
import os
from aura_ros.sim.process import SimProcess
from aura_ros.sim.realtime import RealtimeTask
sim = SimProcess(RealtimeTask())
print(sim.proc.pid, flush=True)
os._exit(0)                       # die without closing anything
"""


def child_alive(pid):
    try:
        state = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[0]
    except OSError:
        return False
    return state != 'Z'


def test_child_exits_when_its_parent_dies_without_closing():
    out = subprocess.run([sys.executable, '-c', ORPHAN], capture_output=True, text=True,
                         timeout=60)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 5
    while child_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not child_alive(pid)


def test_close_mid_episode_ends_the_episode_with_an_error_and_the_child():
    sim = SimProcess(RealtimeTask())
    errors = []

    def run():
        try:
            sim.episode(1, lambda q: None, lambda *a: None)
        except RuntimeError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.5)
    sim.close()
    thread.join(5)
    assert not thread.is_alive() and errors and sim.proc.returncode is not None
    sim.close()                                               # idempotent


def test_a_silent_child_ends_the_episode_after_the_timeout():
    sim = SimProcess(TASK, timeout=0.5)
    try:
        os.kill(sim.proc.pid, signal.SIGSTOP)
        start = time.monotonic()
        with pytest.raises(RuntimeError, match='sent nothing for 0.5 s'):
            sim.episode(1, lambda q: None, lambda *a: None)
        assert time.monotonic() - start < 3
    finally:
        os.kill(sim.proc.pid, signal.SIGCONT)
        sim.close()


WRITER = """
import sys, numpy as np
from aura_ros.sim.process import _Shared
s = _Shared(int(sys.argv[1]), 16)
for k in range(1, 200001):
    s.write(0, [k, k, k, k])
"""


def test_a_reader_never_sees_a_mix_of_two_writes_from_another_process():
    fd = os.memfd_create('t')
    os.ftruncate(fd, 8 * 16)
    reader = _Shared(fd, 16)
    writer = subprocess.Popen([sys.executable, '-c', WRITER, str(fd)], pass_fds=(fd,))
    seen = set()
    try:
        while writer.poll() is None:
            values = reader.read(0, 4)
            if values is not None:
                assert np.all(values == values[0]), values       # one write, whole
                seen.add(values[0])
    finally:
        writer.wait(30)
        os.close(fd)
    assert writer.returncode == 0 and len(seen) > 10             # read while it wrote
    assert reader.read(0, 4) == pytest.approx([200000.0] * 4)
    reader.close()


@pytest.mark.slow
def test_the_mujoco_arm_runs_in_real_time_in_the_child():
    """engine mujoco: the SO-101's 5 joints through the shared slots, rendered frames of the
    task's size, MuJoCo's 600 Hz physics kept up with the wall clock."""
    from aura_ros.sim.mujoco_arm import PHYSICS_HZ
    sim = SimProcess(RealtimeTask(), engine='mujoco')
    frames = []
    try:
        success, times, samples = sim.episode(3, lambda q: None,
                                              lambda f, q, t: frames.append((f, q)))
        assert samples.shape[1] == 5 and frames[0][0].shape == (64, 64, 3)
        assert frames[0][0].std() > 0                       # a rendered scene, not a blank
        assert not success                                  # no command: the arm stays home
        assert sim.physics_steps / sim.episode_s == pytest.approx(PHYSICS_HZ, rel=0.1)
        assert np.allclose(sim.positions(), samples[-1])
    finally:
        sim.close()
