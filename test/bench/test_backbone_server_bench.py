"""The backbone-server benchmark end to end, small: a real server process, arms as processes
(and as threads); the result has the issue's keys, batching forms batches and unbatched does
not."""
import pytest

from aura_ros.bench import backbone_server

pytestmark = pytest.mark.slow


def test_one_and_two_arms_batched_and_unbatched(tiny_models):
    result = backbone_server.run(params=tiny_models['params_pi0'], clients=[1, 2], seconds=1.5,
                                 max_wait_ms=50.0, progress=False, repeats=1)
    for mode in ('batched', 'unbatched'):
        assert set(result[mode]) >= {'throughput', 'p50_ms', 'p99_ms'}
        assert len(result[mode]['throughput']) == 2 and min(result[mode]['throughput']) > 0
    assert result['unbatched']['mean_batch'] == [1.0, 1.0]
    assert result['batched']['mean_batch'][0] == 1.0          # one arm: nothing to batch
    assert result['batched']['mean_batch'][1] > 1.5           # two arms, 50 ms wait: pairs
    assert len(result['throughput_ratio']) == 2
    assert result['targets']['p99_at_1_ms']['bound'] == pytest.approx(
        50.0 + 1.1 * result['unbatched']['p99_ms'][0])


def test_arms_as_threads_batch_too(tiny_models):
    result = backbone_server.run(params=tiny_models['params_pi0'], clients=[2], seconds=1.5,
                                 max_wait_ms=50.0, progress=False, arms='threads', repeats=1)
    assert result['batched']['mean_batch'][0] > 1.5 and result['unbatched']['mean_batch'] == [1]
