"""The control tick (arming, limits, holds) and the inference worker."""
import threading
import time

import numpy as np
import pytest

from aura_ros.control import ChunkExecutor, ControlLoop, InferenceWorker, TimedChunk
from aura_ros.control.limits import CommandLimits

LIMITS = CommandLimits(lower=[-1.0, -1.0], upper=[1.0, 1.0], max_delta=0.5, max_velocity=2.0)


def far_chunk(t0=0.0, n=50, dt=0.02):
    return TimedChunk(t0, dt, np.full((n, 2), 0.9), obs_time=t0)


def test_disarmed_commands_nothing_then_arming_follows_the_chunk_within_velocity():
    loop = ControlLoop(ChunkExecutor(), LIMITS, period=0.01)
    loop.push(far_chunk(), now=0.0)
    q = np.zeros(2)
    assert loop.tick(0.0, q).command is None and loop.tick(0.0, q).reason == 'disarmed'
    loop.arm()
    commands = [loop.tick(0.01 * i, q).command for i in range(20)]
    steps = np.abs(np.diff(np.vstack([q, *commands]), axis=0))
    assert steps.max() == pytest.approx(2.0 * 0.01)       # velocity-limited, not max_delta
    assert commands[-1] == pytest.approx([0.4, 0.4])
    assert loop.last_target == pytest.approx([0.9, 0.9])  # what the chunk asked, pre-limits


def test_holds_by_silence_when_the_chunk_runs_out_then_resumes_from_the_measured_positions():
    loop = ControlLoop(ChunkExecutor(), LIMITS, period=0.01, start_armed=True)
    loop.push(far_chunk(n=3), now=0.0)                   # ends at 0.04
    last = [loop.tick(t, np.zeros(2)).command for t in (0.0, 0.01, 0.02, 0.03, 0.04)][-1]
    assert last == pytest.approx([0.1, 0.1])              # 5 velocity-limited steps from 0
    tick = loop.tick(0.05, np.zeros(2))
    assert tick.held and 'chunk horizon' in tick.reason and loop.last_target is None
    assert tick.command is None and loop.holds == 1      # nothing sent: the controller holds
    loop.push(far_chunk(t0=0.06), now=0.06)
    measured = np.array([-0.5, 0.5])                     # the arm is elsewhere meanwhile
    resumed = loop.tick(0.06, measured).command
    # from the measured positions, not from the last command (0.1, 0.1)
    np.testing.assert_allclose(resumed, measured + 2.0 * 0.01)


def test_no_command_from_non_finite_positions_and_disarm_holds_where_the_arm_is():
    loop = ControlLoop(ChunkExecutor(), LIMITS, period=0.01, start_armed=True)
    loop.push(far_chunk(), now=0.0)
    assert loop.tick(0.0, [np.nan, 0.0]).command is None
    assert loop.tick(0.0, [0.0]).command is None
    np.testing.assert_array_equal(loop.disarm([0.3, 1.7]), [0.3, 1.0])   # clipped to limits
    assert loop.tick(0.01, np.zeros(2)).command is None
    assert loop.executor.newest is None                  # the chunk is not resumed on re-arm
    loop.arm()
    tick = loop.tick(0.02, np.zeros(2))
    assert tick.held and tick.command is None


def test_worker_processes_the_newest_observation_and_survives_errors():
    release = threading.Event()
    seen, chunks = [], []

    def infer(obs):
        seen.append(obs)
        if obs == 'first':
            release.wait(2.0)
        if obs == 'bad':
            raise RuntimeError('backbone failed')
        return far_chunk()

    worker = InferenceWorker(infer, chunks.append)
    worker.submit('first')
    time.sleep(0.05)
    for obs in ('old', 'older', 'newest'):   # arrive while 'first' is still running
        worker.submit(obs)
    release.set()
    deadline = time.monotonic() + 2.0
    while worker.processed < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == ['first', 'newest'] and worker.dropped == 2 and len(chunks) == 2
    worker.submit('bad')
    while worker.errors < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.errors == 1 and 'backbone failed' in worker.last_error
    worker.submit('after')
    while worker.processed < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.processed == 3
    start = time.monotonic()
    assert worker.stop(timeout=1.0) and time.monotonic() - start < 1.0
