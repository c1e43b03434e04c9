"""The learning-curve benchmark: its verdicts, its report section, and its checkpoint cache
(keyed by the code and settings that trained; the recording chain itself runs in
test/nodes/test_episode_recording.py)."""
import pytest

from aura_ros.bench import train_from_recordings as tfr
from aura_ros.bench.report import recordings_section
from aura_ros.bench.train_from_recordings import targets


def arm(success, lo, hi, writes):
    return {'success': success, 'success_ci95': [lo, hi], 'writes_per_episode': writes}


def point(aura_success=0.84, aura_lo=0.79, aura_writes=1.1, surprise_writes=1.3):
    return {'aura': arm(aura_success, aura_lo, aura_success + 0.05, aura_writes),
            'aura_surprise_only': arm(0.80, 0.74, 0.85, surprise_writes),
            'always_write': arm(0.74, 0.68, 0.80, 33.0), 'no_memory': arm(0.40, 0.33, 0.47, 0.0),
            'cue_oracle': arm(0.86, 0.81, 0.90, 1.0), 'first_frame': arm(0.30, 0.24, 0.37, 1.0)}


def test_targets_hold_and_fail_on_each_condition():
    ok = targets(point(), 100)
    assert all(ok.values()) and len(ok) == 4
    assert 'success_within_or_above_cue_oracle' not in targets(point(), 50)   # from 100 on
    assert not targets(point(aura_writes=2.5), 100)['writes_at_most_2x_cue_oracle']
    low = targets(point(aura_success=0.70, aura_lo=0.63), 100)
    assert not low['success_within_or_above_cue_oracle'] and low['success_above_no_memory']
    assert not targets(point(aura_success=0.45, aura_lo=0.38), 100)['success_above_no_memory']
    # surprise_only at 2x AURA's writes keeps 50% of its write reduction
    assert not targets(point(surprise_writes=2.2), 100)[
        'surprise_only_keeps_80pct_of_aura_write_reduction']


def test_report_section_quotes_the_curve():
    result = {'engine': 'planar', 'task': 'v2', 'teleop_noise': 0.3, 'steps': 2000,
              'eval_episodes': 200, 'references': {'base': arm(0.17, 0.12, 0.22, 0.0)},
              'curve': {'50': {'arms': point(), 'train_seconds_aura_no_memory': 250.0,
                               'targets': targets(point(), 50)}}}
    text = '\n'.join(recordings_section(result))
    assert '| 50 | 0.840 [0.790, 0.890], 1.10 w/ep |' in text and '| 250 |' in text
    assert 'Base (frozen policy): 0.170 [0.120, 0.220]' in text
    assert recordings_section({'episodes_recorded': 600}) == []      # the old format: skipped
    # a MuJoCo run stored beside the planar curve gets its own table
    mujoco = dict(result, engine='mujoco', curve={'100': {
        'arms': point(aura_success=0.61, aura_lo=0.55), 'train_seconds_aura_no_memory': 400.0,
        'targets': targets(point(), 100)}})
    text = '\n'.join(recordings_section(tfr.merged(result, mujoco)))
    assert '| 50 | 0.840 [0.790, 0.890]' in text and 'The SO-101 in MuJoCo' in text
    assert '| 100 | 0.610 [0.550, 0.660]' in text and 'mujoco, task v2' in text
    alone = '\n'.join(recordings_section(tfr.merged({}, mujoco)))    # run before the planar
    assert '| 100 | 0.610 [0.550, 0.660]' in alone and '| 50 |' not in alone


def test_each_engine_keeps_the_others_curve_in_the_file():
    planar, mujoco = {'engine': 'planar', 'curve': {'50': 1}}, {'engine': 'mujoco', 'curve': {}}
    both = tfr.merged(tfr.merged({}, planar), mujoco)
    assert both['curve'] == {'50': 1} and both['mujoco'] == mujoco
    again = tfr.merged(both, dict(planar, curve={'100': 2}))     # the planar curve rerun
    assert again['curve'] == {'100': 2} and again['mujoco'] == mujoco
    assert tfr.merged(again, dict(mujoco, curve={'400': 3}))['mujoco']['curve'] == {'400': 3}


@pytest.mark.slow
def test_a_point_retrains_only_when_the_code_or_settings_change(tmp_path, tiny_models,
                                                                monkeypatch):
    from demo_bags import KINDS, write_bag

    from aura_ros.train.episodes import Settings
    bag = write_bag(tmp_path / 'bag', episodes=3, kinds=KINDS)
    settings = Settings(steps=40, tolerance=0.02, cache_dir=str(tmp_path / 'features'),
                        progress=False)
    params = tiny_models['params_pi0']
    first = tfr.train_point([bag], params, tmp_path / 'p', ('aura', 'cue_oracle'), settings)
    assert set(first) == {'aura', 'cue_oracle'}
    calls = []
    from aura_ros.train import episodes
    real_fit = episodes.fit_arm

    def counting(arm, *args, **kwargs):
        calls.append(arm)
        return real_fit(arm, *args, **kwargs)
    monkeypatch.setattr('aura_ros.train.episodes.fit_arm', counting)
    tfr.train_point([bag], params, tmp_path / 'p', ('aura', 'cue_oracle'), settings)
    assert calls == []                                   # both from the cache
    monkeypatch.setattr(tfr, 'TRAINED_BY', tfr.TRAINED_BY + ('sim',))   # other code
    tfr.train_point([bag], params, tmp_path / 'p', ('aura', 'cue_oracle'), settings)
    assert calls == ['aura', 'cue_oracle']


def test_outcomes_come_from_the_bag_when_the_monitor_missed_an_event(tmp_path):
    """A chunk whose live monitor missed an END event is judged by its bag (the record
    training reads): every episode's outcome, in order; an episode without END, or an
    unreadable bag, keeps the monitor's count (the chunk then fails)."""
    from demo_bags import write_bag
    bag = write_bag(tmp_path / 'four', episodes=4, frames=3)
    assert tfr.bag_outcomes(bag, [True]) == [True, False, True, False]
    no_end = write_bag(tmp_path / 'no_events', episodes=2, frames=3, events=False)
    assert tfr.bag_outcomes(no_end, [True]) == [True]
    assert tfr.bag_outcomes(tmp_path / 'missing', [False]) == [False]
