"""The peers' chunk handovers as transitions (issue 30): LeRobot async inference's
weighted_average merge and openpi's open-loop chunk, on the numbers their code gives."""
import threading
import time

import numpy as np
import pytest

from aura_ros.control import TRANSITIONS, ChunkExecutor, TimedChunk
from aura_ros.control.async_policy import AsyncPolicy
from aura_ros.control.execution import ExecutionConfig
from aura_ros.policy import CommandLimits, PolicyRunner


def const(t0, value, n=10, dt=0.1, obs_time=None):
    return TimedChunk(t0=t0, dt=dt, positions=np.full((n, 1), float(value)),
                      obs_time=t0 - dt if obs_time is None else obs_time)


def values(ex, times):
    return [None if (c := ex.sample(t)[0]) is None else float(c[0]) for t in times]


# ---- LeRobot: RobotClient._aggregate_action_queues with weighted_average ------------------

def test_lerobot_overlap_executes_0_3_old_plus_0_7_new_the_rest_new_the_past_dropped():
    ex = ChunkExecutor('lerobot_weighted', max_age_s=10.0)
    ex.push(const(0.0, 0.0), now=0.0)                 # the queue: 0 at 0.0 .. 0.9
    # a chunk of ones for 0.3 .. 1.2 arrives at 0.55: 0.3, 0.4, 0.5 lie in the past
    assert ex.push(const(0.3, 1.0), now=0.55) == 3
    assert values(ex, [0.6, 0.7, 0.8, 0.9]) == pytest.approx([0.7] * 4)   # overlap
    assert values(ex, [1.0, 1.1, 1.2]) == pytest.approx([1.0] * 3)        # new only
    # between the executed action (the queue's 0 at 0.5) and the first merged one (0.7 at
    # 0.6): the past action of the new chunk (1 at 0.5) is never executed
    assert values(ex, [0.55]) == pytest.approx([0.35])
    assert ex.sample(1.25)[0] is None                                     # then it holds


def test_lerobot_merges_against_the_merged_queue_and_drops_the_queue_past_the_new_end():
    ex = ChunkExecutor('lerobot_weighted', max_age_s=10.0)
    ex.push(const(0.0, 0.0), now=0.0)
    ex.push(const(0.3, 1.0), now=0.55)                # queue: 0.7 at 0.6 .. 0.9, 1 at 1.0 .. 1.2
    assert ex.push(const(0.6, 2.0), now=0.65) == 1    # 2 for 0.6 .. 1.5; 0.6 is past
    assert values(ex, [0.7, 0.9]) == pytest.approx([0.3 * 0.7 + 0.7 * 2] * 2)   # compounds
    assert values(ex, [1.0, 1.2]) == pytest.approx([0.3 * 1.0 + 0.7 * 2] * 2)
    assert values(ex, [1.3, 1.5]) == pytest.approx([2.0, 2.0])
    # a short chunk ending before the queue does: the queue's later actions are gone
    ex = ChunkExecutor('lerobot_weighted', max_age_s=10.0)
    ex.push(const(0.0, 0.0), now=0.0)
    ex.push(const(0.3, 1.0, n=4), now=0.45)           # 0.3 .. 0.6; 0.5 and 0.6 kept
    assert values(ex, [0.5, 0.6]) == pytest.approx([0.7, 0.7])
    assert ex.sample(0.8)[0] is None                  # the old 0.7 .. 0.9 are not executed


def test_lerobot_a_chunk_that_starts_ahead_of_now_continues_from_the_queue():
    """Latency under one period: nothing of the new chunk is past. As when some of it is past,
    the command goes from the queue's action of the period under way (0.35: 3.5) to the first
    merged one (0.45: 0.3 * 4.5 + 0.7 * 20), not straight to the merged value."""
    ex = ChunkExecutor('lerobot_weighted', max_age_s=10.0)
    ex.push(TimedChunk(0.0, 0.1, np.arange(10.0)[:, None], -0.1), now=0.0)   # k at 0.1 k
    ex.push(const(0.45, 20.0), now=0.42)              # starts 0.03 s ahead
    first = 0.3 * 4.5 + 0.7 * 20.0
    assert values(ex, [0.42]) == pytest.approx([3.5 + 0.7 * (first - 3.5)])
    assert values(ex, [0.45, 0.55]) == pytest.approx([first, 0.3 * 5.5 + 0.7 * 20.0])


def test_lerobot_a_chunk_entirely_in_the_past_empties_the_queue():
    ex = ChunkExecutor('lerobot_weighted', max_age_s=10.0)
    ex.push(const(0.0, 0.0), now=0.0)
    assert ex.push(const(0.0, 1.0, n=3), now=0.5) == 3
    assert ex.newest is None and ex.sample(0.5)[0] is None


def test_lerobot_asks_for_a_chunk_when_at_most_half_a_chunk_is_left():
    ex = ChunkExecutor('lerobot_weighted', max_age_s=10.0)
    assert ex.admit(0.0)                              # empty queue: always
    ex.push(const(0.1, 0.0), now=0.0)                 # 10 actions at 0.1 .. 1.0, all to come
    assert not ex.admit(0.0) and not ex.admit(0.45)   # 10, then 6 of 10 left
    assert ex.admit(0.5) and ex.admit(0.55)           # 5 of 10: chunk_size_threshold 0.5
    assert ex.admit(0.56)                             # no request bookkeeping: every frame


def test_lerobot_latest_only_is_our_latest():
    """LeRobot's latest_only (new replaces old) and our latest execute the same after the
    first interpolation interval (LeRobot's anchor is the action being executed)."""
    a, b = ChunkExecutor('latest', max_age_s=10.0), ChunkExecutor('lerobot_weighted',
                                                                    max_age_s=10.0)
    import aura_ros.control.chunks as chunks
    old = chunks.LEROBOT_OLD_WEIGHT, chunks.LEROBOT_NEW_WEIGHT
    chunks.LEROBOT_OLD_WEIGHT, chunks.LEROBOT_NEW_WEIGHT = 0.0, 1.0     # latest_only
    try:
        for ex in (a, b):
            ex.push(const(0.0, 0.0), now=0.0)
            ex.push(const(0.3, 1.0), now=0.55)
        times = np.arange(0.6, 1.21, 0.01)
        assert values(a, times) == pytest.approx(values(b, times))
    finally:
        chunks.LEROBOT_OLD_WEIGHT, chunks.LEROBOT_NEW_WEIGHT = old


# ---- openpi: ActionChunkBroker + the synchronous runtime ---------------------------------

def ramp_chunk(t0, n=5, dt=0.1, obs_time=0.0):
    return TimedChunk(t0=t0, dt=dt, positions=np.arange(1.0, n + 1)[:, None], obs_time=obs_time)


def test_open_loop_runs_the_chunk_from_its_arrival_holds_and_asks_only_when_done():
    ex = ChunkExecutor('open_loop', max_age_s=5.0)
    assert ex.admit(0.0)                               # no chunk: ask
    assert not ex.admit(0.05)                          # one chunk awaited at a time
    # predicted for 0.1 .. 0.5 from a frame at 0.0, arrives at 0.3: nothing skipped, action 0
    # first, one action per period from the arrival
    assert ex.push(ramp_chunk(0.1), now=0.3) == 0
    assert values(ex, [0.3, 0.4, 0.5, 0.6, 0.7]) == pytest.approx([1, 2, 3, 4, 5])
    assert values(ex, [0.35]) == pytest.approx([1.5])
    # no new chunk is taken until the last action has had its period (openpi observes at the
    # step after applying it)
    assert not any(ex.admit(t) for t in np.arange(0.3, 0.8 - 1e-9, 0.01))
    # the chunk is done: the arm holds (nothing commanded) while the next one is inferred
    command, reason = ex.sample(0.75)
    assert command is None and 'open loop' in reason
    assert ex.admit(0.8) and not ex.admit(0.85)
    assert ex.sample(0.95)[0] is None                  # still waiting: still holding
    ex.push(ramp_chunk(0.9, obs_time=0.8), now=1.0)
    assert values(ex, [1.0, 1.4]) == pytest.approx([1, 5])


def test_open_loop_steps_runs_a_prefix_and_a_failed_inference_asks_again():
    ex = ChunkExecutor('open_loop', max_age_s=5.0, open_loop_steps=2)
    assert ex.admit(0.0)
    ex.push(ramp_chunk(0.1), now=0.2)
    assert values(ex, [0.2, 0.3]) == pytest.approx([1, 2])
    assert ex.sample(0.31)[0] is None and ex.admit(0.4)
    assert not ex.admit(0.45)
    ex.inference_failed()                              # that frame gave no chunk
    assert ex.admit(0.46)
    ex.clear()
    assert ex.admit(0.5)


def test_open_loop_age_counts_from_the_arrival():
    ex = ChunkExecutor('open_loop', max_age_s=1.0)
    ex.push(ramp_chunk(0.1, n=20, obs_time=0.0), now=0.5)   # runs 0.5 .. 2.4
    assert values(ex, [1.4]) == pytest.approx([10])        # frame 1.4 s old: executed
    command, reason = ex.sample(1.6)                       # started 1.1 s ago
    assert command is None and 'max_chunk_age 1.0' in reason


def test_the_settings_know_the_new_transitions():
    from aura_ros.params import POLICY_PARAMS
    spec = {p.name: p for p in POLICY_PARAMS}
    assert spec['chunk.transition'].choices == TRANSITIONS
    assert {'lerobot_weighted', 'open_loop'} <= set(TRANSITIONS)
    config = ExecutionConfig('async', transition='open_loop', open_loop_steps=4)
    assert config.runtime()['open_loop_steps'] == 4
    for bad in (-1, 2.5):
        with pytest.raises(ValueError, match='open_loop_steps'):
            ExecutionConfig('async', transition='open_loop', open_loop_steps=bad)
    ex = ChunkExecutor('open_loop', open_loop_steps=3)
    with pytest.raises(ValueError, match='open_loop_steps'):
        ex.configure(open_loop_steps=-2)
    assert ex.open_loop_steps == 3


class CountingRunner(PolicyRunner):
    """A PolicyRunner over a chunk of constant positions, inference taking ``delay`` s."""

    def __init__(self, delay, n=8):
        self.limits = CommandLimits(lower=[-1, -1], upper=[1, 1], max_delta=1.0,
                                    max_velocity=100.0)
        self.delay, self.n, self.calls = delay, n, 0

    def infer_chunk(self, image, positions, obs_time, dt, instruction=''):
        time.sleep(self.delay)
        self.calls += 1
        chunk = TimedChunk(obs_time + dt, dt, np.full((self.n, 2), 0.1 * (self.calls % 2)),
                           obs_time)
        return chunk, None

    def reset(self, episode_seed=None):
        pass


def run_policy(transition, seconds=1.0, delay=0.05):
    runner = CountingRunner(delay)
    sent, lock = [], threading.Lock()

    def send(command):
        with lock:
            sent.append(time.monotonic())

    config = ExecutionConfig('async', control_rate=200.0, action_period=0.02,
                             transition=transition, max_age_s=5.0)
    policy = AsyncPolicy(runner, send, lambda: np.zeros(2), config, start_armed=True,
                         freeze_gc=False)
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            policy.submit(np.zeros((4, 4, 3), np.uint8), time.monotonic(),
                          positions=np.zeros(2))
            time.sleep(0.01)
    finally:
        assert policy.stop()
    return runner.calls, np.diff(sent)


def test_open_loop_in_async_policy_infers_once_per_chunk_and_holds_while_inferring():
    # chunks of 8 x 0.02 s = 0.16 s; inference 0.05 s: latest infers back to back (~20 in
    # 1 s), open loop once per chunk + wait (~1 / 0.24 s)
    calls, gaps = run_policy('open_loop')
    latest_calls, _ = run_policy('latest')
    assert 2 <= calls <= 7 and latest_calls > 2 * calls
    assert gaps.max() >= 0.04            # nothing sent while the next chunk is inferred
