"""The train-from-recordings benchmark's verdicts and its report section (the recording and
training chain itself runs in test/nodes/test_episode_recording.py)."""
import pytest

from aura_ros.bench.report import recordings_section
from aura_ros.bench.train_from_recordings import targets


def arm(success, lo, hi, writes):
    return {'success': success, 'success_ci95': [lo, hi], 'writes_per_episode': writes}


def block(rec_success, rec_lo, rec_writes):
    return {'from_recordings': arm(rec_success, rec_lo, rec_success + 0.05, rec_writes),
            'in_process': arm(0.85, 0.80, 0.89, 1.2), 'base': arm(0.17, 0.12, 0.22, 0.0),
            'always_write': arm(0.74, 0.68, 0.80, 33.0)}


def test_targets_hold_and_fail_on_each_condition():
    ok = targets(block(0.84, 0.79, 1.1))
    assert ok['within_in_process_ci'] and ok['above_base'] and ok['write_reduction_at_least_7x']
    assert ok['write_reduction_vs_always_write'] == pytest.approx(30.0)
    low = targets(block(0.70, 0.64, 1.1))              # below the in-process interval
    assert not low['within_in_process_ci'] and low['above_base']
    base_like = targets(block(0.20, 0.15, 1.1))        # overlaps the base
    assert not base_like['above_base']
    chatty = targets(block(0.84, 0.79, 6.0))           # 5.5x fewer writes only
    assert not chatty['write_reduction_at_least_7x']
    silent = targets(block(0.84, 0.79, 0.0))           # no write at all: no ratio to claim
    assert silent['write_reduction_vs_always_write'] is None
    assert not silent['write_reduction_at_least_7x']


def test_report_section_quotes_the_numbers():
    b = block(0.84, 0.79, 1.1)
    result = {'episodes_recorded': 600, 'teleop_noise': 0.3, 'demonstration_success': 0.99,
              'frames': 20_000, 'frames_dropped_unsynced': 12, 'steps': 2000,
              'eval_episodes': 200,
              'feature_extraction': {'frames_per_s': 60.0, 'second_run': {
                  'cached_episodes': 600, 'frames_computed': 0, 'seconds': 9.0}},
              'variant_results': {'memory': b}, 'targets': {'memory': targets(b)}}
    text = '\n'.join(recordings_section(result))
    assert '| from_recordings | 0.840 [0.790, 0.890] | 1.10 |' in text
    assert '12 dropped unsynchronised' in text and 'computed 0 frames' in text
    assert 'write reduction against always_write: 30.0x' in text
