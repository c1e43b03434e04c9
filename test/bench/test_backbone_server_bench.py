"""The backbone-server benchmark end to end, small: a real server process, two arms as processes
(and as threads); the result has the issue's keys, batching forms batches and unbatched does
not (the one-arm points and their targets are the benchmark's: each point starts a server)."""
import pytest

from aura_ros.bench import backbone_server


@pytest.mark.slow
def test_two_arm_processes_batched_and_unbatched(tiny_models):
    result = backbone_server.run(params=tiny_models['params_pi0'], clients=[2], seconds=1.0,
                                 max_wait_ms=50.0, progress=False, repeats=1)
    for mode in ('batched', 'unbatched'):
        assert set(result[mode]) >= {'throughput', 'p50_ms', 'p99_ms'}
        assert len(result[mode]['throughput']) == 1 and min(result[mode]['throughput']) > 0
    assert result['unbatched']['mean_batch'] == [1.0]
    assert result['batched']['mean_batch'][0] > 1.5           # two arms, 50 ms wait: pairs
    assert len(result['throughput_ratio']) == 1


@pytest.mark.slow
def test_two_arms_as_threads_batch_too(tiny_models):
    result = backbone_server.run(params=tiny_models['params_pi0'], clients=[2], seconds=1.0,
                                 max_wait_ms=50.0, progress=False, arms='threads', repeats=1)
    assert result['batched']['mean_batch'][0] > 1.5 and result['unbatched']['mean_batch'] == [1]


def test_report_section_quotes_the_ratio_unrounded():
    from aura_ros.bench.report import backbone_server_section
    block = {'throughput': [30.0, 141.0], 'p50_ms': [20.0, 50.0], 'p99_ms': [30.0, 80.0],
             'mean_batch': [1.0, 8.0]}
    slow = dict(block, throughput=[30.0, 47.3], p99_ms=[25.0, 200.0], mean_batch=[1.0, 1.0])
    result = {'clients': [1, 8], 'batched': block, 'unbatched': slow, 'server_threads': 1,
              'arms': 'processes', 'rate_hz': 30.0, 'max_batch': 8, 'max_wait_ms': 5.0,
              'seconds': 10.0, 'repeats': 3, 'throughput_ratio': [1.0, 2.98],
              'throughput_ratio_runs': [[1.0, 1.0, 1.0], [2.9, 2.98, 3.1]],
              'targets': {'throughput_ratio_at_8': 2.98, 'throughput_3x_at_8': False,
                          'p99_below_unbatched_at_8': True,
                          'p99_at_1_ms': {'batched': 30.0, 'unbatched': 25.0, 'bound': 32.5},
                          'p99_at_1_within_wait_plus_10pct': True}}
    text = '\n'.join(backbone_server_section(result))
    assert '2.98x (False)' in text and '| 8 | 141 | 47 | 2.98x [2.90-3.10] |' in text
    assert '30.0 ms against a bound of 32.5 ms (True)' in text
