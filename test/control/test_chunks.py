"""Time-stamped chunks: interpolation, latency compensation, holds, each transition mode."""
import numpy as np
import pytest

from aura_ros.control import ChunkExecutor, TimedChunk, chunk_targets


def ramp(t0, n=10, dt=0.1, start=0.0, slope=1.0, joints=2, obs_time=None):
    """Targets rising by ``slope`` rad/s from ``start``: position k = start + slope * k * dt."""
    pos = start + slope * dt * np.arange(n)[:, None] * np.ones((1, joints))
    return TimedChunk(t0=t0, dt=dt, positions=pos, obs_time=t0 if obs_time is None else obs_time)


def test_interpolates_between_targets_and_clamps_outside():
    c = TimedChunk(t0=1.0, dt=0.5, positions=[[0.0], [1.0], [3.0]], obs_time=1.0)
    assert c.at(1.25) == pytest.approx([0.5])
    assert c.at(1.75) == pytest.approx([2.0])
    assert c.at(0.0) == pytest.approx([0.0]) and c.at(9.0) == pytest.approx([3.0])
    assert c.end == 2.0 and c.covers(2.0) and not c.covers(2.01)


@pytest.mark.parametrize('bad, match', [(dict(positions=[[np.nan]]), 'finite'),
                                        (dict(positions=[1.0, 2.0]), r'\(H, J\)'),
                                        (dict(dt=0.0), 'dt')])
def test_chunk_refuses_bad_input(bad, match):
    args = dict(t0=0.0, dt=0.1, positions=[[0.0]], obs_time=0.0) | bad
    with pytest.raises(ValueError, match=match):
        TimedChunk(**args)


def test_actions_due_while_inference_ran_are_skipped_not_executed():
    ex = ChunkExecutor()
    chunk = ramp(0.0)          # observation at t = 0; targets 0.0, 0.1, 0.2, ... at 0, 0.1, ..
    assert ex.push(chunk, now=0.25) == 2       # targets at 0.0 and 0.1 are in the past
    command, reason = ex.sample(0.25)
    assert reason == '' and command == pytest.approx([0.25, 0.25])   # on time, not index 0
    assert ex.skipped == 2
    assert ex.push(ramp(0.3), now=0.31) == 0   # arrived on time: nothing skipped
    assert ex.skipped == 2


def test_holds_without_chunk_after_its_end_and_when_stale():
    ex = ChunkExecutor(max_age_s=0.5)
    assert ex.sample(0.0)[0] is None and 'no action chunk' in ex.sample(0.0)[1]
    ex.push(ramp(0.0, n=3), now=0.0)                  # ends at 0.2
    assert ex.sample(0.2)[0] is not None
    command, reason = ex.sample(0.21)
    assert command is None and 'slower than the chunk horizon' in reason
    ex.push(ramp(1.0, n=20, obs_time=0.6), now=1.0)   # observation 0.4 s before arrival: ok
    assert ex.sample(1.05)[0] is not None
    command, reason = ex.sample(1.15)                 # 0.55 s after its observation
    assert command is None and 'max_chunk_age 0.5' in reason
    ex.clear()
    assert ex.sample(1.05)[0] is None


def commands(ex, times):
    return np.array([ex.sample(t)[0] for t in times])


def switch(transition, **kw):
    """Execute a ramp, then at t = 0.5 a chunk 0.3 rad away from it; command every 2 ms."""
    ex = ChunkExecutor(transition, **kw)
    ex.push(ramp(0.0, n=20), now=0.0)
    before = commands(ex, np.arange(0.0, 0.5, 0.002))
    ex.push(ramp(0.5, n=20, start=0.8), now=0.5)      # the old ramp is at 0.5 here
    after = commands(ex, np.arange(0.5, 1.4, 0.002))
    return before, after


def test_latest_jumps_to_the_new_chunk():
    before, after = switch('latest')
    assert after[0] == pytest.approx([0.8, 0.8])
    assert np.abs(after[0] - before[-1]).max() > 0.25


def test_blend_is_continuous_then_follows_the_new_chunk():
    before, after = switch('blend', blend_s=0.1)
    assert np.abs(after[0] - before[-1]).max() < 0.01             # one 2 ms tick of the ramp
    steps = np.abs(np.diff(np.concatenate([before, after]), axis=0)).max()
    assert steps < 0.3 * 0.002 / 0.1 + 0.01                       # gap spread over blend_s
    t = 0.5 + 0.002 * np.arange(len(after))
    done = t >= 0.6 + 1e-9
    assert after[done] == pytest.approx(0.8 + (t[done] - 0.5)[:, None] * np.ones((1, 2)))


def test_temporal_ensemble_weights_live_chunks_like_act():
    ex = ChunkExecutor('temporal_ensemble', ensemble_decay=0.0, max_age_s=5.0)
    ex.push(ramp(0.0, n=20), now=0.0)
    ex.push(ramp(0.5, n=20, start=0.8), now=0.5)
    assert ex.sample(0.5)[0] == pytest.approx([0.65, 0.65])     # plain mean of 0.5 and 0.8
    ex.configure(ensemble_decay=5.0)                             # the oldest dominates
    assert ex.sample(0.5)[0] == pytest.approx(0.5 + 0.3 * np.exp(-5) / (1 + np.exp(-5)))
    assert ex.sample(1.95)[0] == pytest.approx([2.25, 2.25])   # the old one ended at 1.9


def test_transitions_are_smoother_than_latest_on_noisy_chunks():
    rng = np.random.default_rng(0)

    def run(transition):
        ex = ChunkExecutor(transition, blend_s=0.1, ensemble_decay=0.1)
        out = []
        for i in range(40):                        # a chunk every 0.1 s, spanning 0.5 s
            t0 = 0.1 * i
            truth = np.sin(t0 + 0.05 * np.arange(11))[:, None]
            ex.push(TimedChunk(t0, 0.05, truth + 0.05 * rng.standard_normal((1, 1)), t0), t0)
            out += [ex.sample(t)[0] for t in t0 + np.arange(0.0, 0.1, 0.002)]
        return np.abs(np.diff(np.array(out)[:, 0])).max()

    latest = run('latest')
    assert run('blend') < 0.5 * latest and run('temporal_ensemble') < 0.5 * latest


def test_configure_refuses_invalid_values_and_keeps_the_old_ones():
    ex = ChunkExecutor('blend', blend_s=0.2)
    for bad, match in [(dict(transition='smooth'), 'transition must be one of'),
                       (dict(blend_s=0.0), 'blend_s'), (dict(ensemble_decay=-1.0), 'decay'),
                       (dict(max_age_s=float('nan')), 'max_age_s')]:
        with pytest.raises(ValueError, match=match):
            ex.configure(**bad)
    assert (ex.transition, ex.blend_s, ex.ensemble_decay) == ('blend', 0.2, 0.0)
    ex.configure(transition='latest')
    assert ex.transition == 'latest'


def test_delta_actions_accumulate_from_the_observed_positions():
    q = np.array([0.1, -0.2])
    a = np.array([[0.01, 0.0], [0.01, 0.02], [0.0, 0.02]])
    np.testing.assert_allclose(chunk_targets(q, a),
                               [[0.11, -0.2], [0.12, -0.18], [0.12, -0.16]])
    np.testing.assert_array_equal(chunk_targets(q, a, 'absolute'), a)
    with pytest.raises(ValueError, match='action_type'):
        chunk_targets(q, a, 'velocity')
