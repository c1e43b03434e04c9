"""Bags -> episodes -> trained memory (``train episodes``), without ROS processes: bags are
written here with rosbags; the backbones are the tiny test models (two adapters)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from demo_bags import JOINTS, KINDS, write_bag

from aura_ros.train.bags import BagError, StreamTopics, scan
from aura_ros.train.episodes import Settings, train_from_recordings
from aura_ros.train.recordings import RecordingError


def quiet(**kwargs):
    return Settings(steps=kwargs.pop('steps', 60), progress=False, **kwargs)


@pytest.mark.parametrize('demo_type', ['joint_trajectory', 'float64_multi_array',
                                       'joint_state'])
def test_scan_splits_episodes_and_aligns_every_demo_type(tmp_path, demo_type):
    from aura_ros.train.recordings import align, demonstrated_actions
    bag = write_bag(tmp_path / 'bag', demo_type=demo_type)
    found = scan(bag, StreamTopics(), JOINTS)
    assert [(s.index, s.success, s.seed) for s in found.episodes] == [(0, True, 0),
                                                                      (1, False, 1)]
    for span in found.episodes:
        frames = found.episode_frames(span)
        assert len(frames) == 12
        a = align(found.frame_times[frames], found.joint_times, found.joint_positions,
                  found.demo_times, found.demo_positions, 0.02)
        assert len(a.frames) == 12 and sum(a.dropped.values()) == 0
        # delta = target - measured: the known step, to the joints' drift over <= 10 ms
        actions = demonstrated_actions(a.positions, a.targets, 'delta')
        assert np.abs(actions - [0.1, -0.2, 0.3]).max() < 1e-3


def test_an_event_recorded_twice_counts_once():
    from aura_ros.msg import EpisodeEvent
    from aura_ros.train.bags import split_episodes

    class Found:
        warnings = []
    start, end = EpisodeEvent(event=0, episode=0, seed=3), EpisodeEvent(event=1, episode=0)
    spans = split_episodes([(1.0, start), (1.0, start), (2.0, end), (2.0, end)], Found)
    assert [(s.start, s.end, s.seed) for s in spans] == [(1.0, 2.0, 3)]
    assert Found.warnings == []


def test_a_bag_without_events_is_one_episode(tmp_path):
    found = scan(write_bag(tmp_path / 'bag', events=False), StreamTopics(), JOINTS)
    assert len(found.episodes) == 1 and found.episodes[0].success is None
    assert len(found.episode_frames(found.episodes[0])) == 24
    assert any('no episode events' in w for w in found.warnings)


def test_frame_truth_is_read_by_the_frames_stamps(tmp_path):
    found = scan(write_bag(tmp_path / 'bag', kinds=KINDS), StreamTopics(), JOINTS)
    assert found.frame_kinds == KINDS * 2
    assert scan(write_bag(tmp_path / 'plain'), StreamTopics(), JOINTS).frame_kinds == []


def _report(n=200, aura=None, none=None):
    return {'episodes': {'total': n, 'validation': n // 10},
            'validation': {'aura': aura or {}, 'no_memory': none or {}}}


def test_report_warnings_fire_on_a_gate_that_writes_everywhere_and_not_on_a_selective_one():
    from aura_ros.train.episodes import report_warnings
    selective = {'write_rate': 0.03, 'action_mse': 0.010, 'action_mse_memory_frames': 0.012}
    none = {'write_rate': 0.0, 'action_mse': 0.011, 'action_mse_memory_frames': 0.030}
    assert report_warnings(_report(aura=selective, none=none)) == []
    always = dict(selective, write_rate=0.48)
    warned = report_warnings(_report(aura=always, none=none))
    assert len(warned) == 1 and 'writes on 48% of validation frames' in warned[0]
    # no better than no memory where memory matters, although better over all frames
    useless = dict(selective, action_mse=0.009, action_mse_memory_frames=0.031)
    warned = report_warnings(_report(aura=useless, none=none))
    assert len(warned) == 1 and 'on memory frames' in warned[0] and '0.031' in warned[0]
    # without FrameTruth the comparison is over all frames, and says so
    blind = {'write_rate': 0.03, 'action_mse': 0.012, 'action_mse_memory_frames': None}
    warned = report_warnings(_report(aura=blind, none=dict(none, action_mse_memory_frames=None)))
    assert len(warned) == 1 and 'no FrameTruth' in warned[0]
    assert 'fewer than 50' in report_warnings(_report(n=20, aura=selective, none=none))[0]
    # a gate that (almost) never writes: closed, whichever learned gate it is
    assert report_warnings(_report(aura=dict(selective, writes_per_episode=1.1),
                                   none=none)) == []
    closed = dict(selective, write_rate=0.0, writes_per_episode=0.05)
    warned = report_warnings(_report(aura=closed, none=none))
    assert len(warned) == 1 and 'the aura gate is closed: 0.05 writes' in warned[0]
    report = _report(aura=selective, none=none)
    report['validation']['aura_surprise_only'] = closed
    warned = report_warnings(report)
    assert len(warned) == 1 and 'aura_surprise_only gate is closed' in warned[0]


@pytest.mark.slow
@pytest.mark.parametrize('params_key', ['params_pi0', 'params_vision'])
def test_train_episodes_end_to_end_and_the_cache_skips_the_backbone(tmp_path, tiny_models,
                                                                    params_key):
    bags = tmp_path / 'bags'
    for i in range(3):
        write_bag(bags / f'session_{i}', seed=i, storage='sqlite3' if i == 2 else 'mcap',
                  kinds=KINDS)
    out = tmp_path / 'out'
    report = train_from_recordings([str(bags)], tiny_models[params_key], out,
                                   quiet(tolerance=0.02))
    assert report['episodes'] == {'total': 6, 'train': 5, 'validation': 1, 'successful': 3,
                                  'outcome_unknown': 0}
    assert report['frames'] == report['frames_labelled'] == 72
    assert report['feature_extraction']['frames'] == 72
    for name in ('memory.safetensors', 'memory_always_write.safetensors',
                 'memory_no_memory.safetensors', 'report.json', 'validation.png',
                 'gate_activity.png', 'params.yaml'):
        assert (out / name).is_file(), name
    val = report['validation']
    assert val['always_write']['write_rate'] == 1.0 and val['no_memory']['write_rate'] == 0.0
    # FrameTruth in the recordings: writes per kind of frame, the error on memory frames
    every = val['always_write']['write_probability']
    assert {k: (c['frames'], c['writes']) for k, c in every.items()} == {
        'pre_cue': (3, 3), 'cue_onset': (1, 1), 'cue_continued': (2, 2), 'delay': (3, 3),
        'go': (3, 3)}                               # one validation episode of 12 frames
    assert all(r['action_mse_memory_frames'] is not None for r in val.values())
    assert any('6 episodes: fewer than 50' in w for w in report['warnings'])
    assert set(report['meanings']) >= {'action_mse', 'action_mse_memory_frames',
                                       'write_probability'}
    # the checkpoint loads into the runner the parameter file describes
    from aura_ros.core import load_memory
    from aura_ros.policy import PolicyRunner
    from aura_ros.train.episodes import load_deployment
    dep = load_deployment(tiny_models[params_key])
    memory = load_memory(out / 'memory.safetensors')
    assert memory.config.feature_dim == dep.backbone.feature_dim
    runner = PolicyRunner(dep.backbone, memory, dep.limits)
    step = runner.step(np.zeros((dep.image_size, dep.image_size, 3), np.uint8), np.zeros(3))
    assert step.command is not None and np.all(np.isfinite(step.command))
    assert str((out / 'memory.safetensors').resolve()) in (out / 'params.yaml').read_text()
    # second run: every episode from the cache, no frame through the backbone
    again = train_from_recordings([str(bags)], tiny_models[params_key], tmp_path / 'out2',
                                  quiet(tolerance=0.02, cache_dir=str(out / 'features')))
    assert again['feature_extraction']['frames'] == 0
    assert again['feature_extraction']['cached_episodes'] == 6
    assert json.loads((out / 'report.json').read_text())['frames'] == 72
    # an interrupted run resumes: only the episode whose file is missing is computed
    from aura_ros.train.episodes import extract_features, read_recordings
    files = sorted((out / 'features').rglob('episode_*.safetensors'))
    assert len(files) == 6
    files[3].unlink()
    eps, _ = read_recordings([str(bags)], dep, quiet(tolerance=0.02))
    resumed = extract_features(eps, dep, quiet(), out / 'features')
    assert resumed['frames'] == 12 and resumed['cached_episodes'] == 5
    assert files[3].is_file()


def test_reference_arms_write_exactly_on_their_schedule_and_need_frame_truth(tmp_path,
                                                                            tiny_models):
    """cue_oracle and first_frame: always_write memories trained and validated writing on the
    recorded cue onsets / the first frame only; without FrameTruth, one clear error."""
    write_bag(tmp_path / 'truth', episodes=3, seed=1, kinds=KINDS)
    report = train_from_recordings([str(tmp_path / 'truth')], tiny_models['params_pi0'],
                                   tmp_path / 'out', quiet(steps=40, arms=(
                                       'aura', 'cue_oracle', 'first_frame')))
    val = report['validation']
    oracle = {k: c['writes'] for k, c in val['cue_oracle']['write_probability'].items()}
    assert oracle == {'pre_cue': 0, 'cue_onset': 1, 'cue_continued': 0, 'delay': 0, 'go': 0}
    first = {k: c['writes'] for k, c in val['first_frame']['write_probability'].items()}
    assert first == {'pre_cue': 1, 'cue_onset': 0, 'cue_continued': 0, 'delay': 0, 'go': 0}
    assert set(report['train_seconds']) == {'aura', 'cue_oracle', 'first_frame'}
    write_bag(tmp_path / 'plain', episodes=3, seed=1)
    with pytest.raises(RecordingError, match='cue_oracle arm needs FrameTruth'):
        train_from_recordings([str(tmp_path / 'plain')], tiny_models['params_pi0'],
                              tmp_path / 'out2', quiet(steps=40, arms=('aura', 'cue_oracle')))
    with pytest.raises(ValueError, match="unknown arm.*'oracle'"):
        quiet(arms=('aura', 'oracle'))


def test_absolute_convention_labels_are_the_targets(tmp_path, tiny_models):
    from aura_ros.train.episodes import load_deployment, read_recordings
    bag = write_bag(tmp_path / 'bag')
    dep = load_deployment(tiny_models['params_pi0'])
    dep.limits.action_type = 'absolute'
    eps, _ = read_recordings([str(bag)], dep, quiet(tolerance=0.02))
    ep = eps[0]
    assert np.allclose(ep.actions - ep.positions_all[ep.kept], [0.1, -0.2, 0.3], atol=1e-3)


def test_dagger_corrections_replace_the_commands_where_present(tmp_path, tiny_models):
    from aura_ros.train.episodes import load_deployment, read_recordings
    bag = write_bag(tmp_path / 'bag', corrections=5)
    dep = load_deployment(tiny_models['params_pi0'])
    topics = StreamTopics(corrections='teleop/corrections')
    eps, _ = read_recordings([str(bag)], dep, quiet(tolerance=0.02, topics=topics))
    for ep in eps:
        assert ep.corrected == 5
        assert np.allclose(ep.actions[:5], 0.5, atol=1e-3)              # the corrections
        assert np.allclose(ep.actions[5:], [0.1, -0.2, 0.3], atol=1e-3)  # the policy's
    plain, _ = read_recordings([str(bag)], dep, quiet(tolerance=0.02))
    assert np.allclose(plain[0].actions, [0.1, -0.2, 0.3], atol=1e-3)


# ---- bad input: one clear error, nothing written --------------------------------------------
def _fails(tmp_path, tiny_models, match, bags, **settings):
    out = tmp_path / 'out'
    with pytest.raises(RecordingError, match=match):
        train_from_recordings([str(b) for b in bags], tiny_models['params_pi0'], out,
                              quiet(**settings))
    assert not (out / 'memory.safetensors').exists()
    assert not (out / 'report.json').exists()


def test_missing_topic(tmp_path, tiny_models):
    bag = write_bag(tmp_path / 'bag')
    topics = StreamTopics(commands='leader/joint_states')
    _fails(tmp_path, tiny_models, r"no demonstrated command topic 'leader/joint_states'; "
           r'topics in the bag: /aura/episode_events', [bag], topics=topics)


def test_wrong_type_on_the_command_topic(tmp_path, tiny_models):
    bag = write_bag(tmp_path / 'bag')
    _fails(tmp_path, tiny_models, r'topic /camera/image_raw has type sensor_msgs/msg/Image, '
           r'expected', [bag], topics=StreamTopics(commands='camera/image_raw'))


def test_unsynchronisable_streams_report_the_offsets(tmp_path, tiny_models):
    bag = write_bag(tmp_path / 'bag', demo_shift=2.0)    # the teleop's clock is 2 s off
    _fails(tmp_path, tiny_models, r'episode 0: no frame has both .* within 0\.05 s: median '
           r'offset to the nearest joint state 0\.00\d s, to the nearest command [12]\.\d{3} s',
           [bag])


def test_no_demonstrated_commands(tmp_path, tiny_models):
    bag = write_bag(tmp_path / 'bag', demos=False)    # the topic is there, never published
    _fails(tmp_path, tiny_models, r"bag: no demonstrated commands on 'teleop/joint_commands'",
           [bag])


def test_mismatched_action_width(tmp_path, tiny_models):
    bag = write_bag(tmp_path / 'bag', demo_type='float64_multi_array', demo_width=4)
    _fails(tmp_path, tiny_models, r'demonstrated commands have 4 values, the parameter file '
           r'commands 3 joints', [bag])


def test_an_episode_with_no_frames(tmp_path, tiny_models):
    bag = write_bag(tmp_path / 'bag', empty_episode=True)
    _fails(tmp_path, tiny_models, r'episode 1: no frames between its START and END', [bag])


def test_truncated_bag_stops_or_is_skipped(tmp_path, tiny_models):
    good = write_bag(tmp_path / 'good')
    bad = write_bag(tmp_path / 'bad', seed=3)
    mcap = next(bad.glob('*.mcap'))
    mcap.write_bytes(mcap.read_bytes()[:len(mcap.read_bytes()) // 2])
    _fails(tmp_path, tiny_models, r'bad: (cannot read|damaged or truncated).*--on-bad-bag '
           r'skip', [good, bad])
    report = train_from_recordings([str(good), str(bad)], tiny_models['params_pi0'],
                                   tmp_path / 'out_skip', quiet(on_bad_bag='skip'))
    assert report['episodes']['total'] == 2 and len(report['skipped_bags']) == 1


def test_a_cache_of_another_backbone_is_refused(tmp_path, tiny_models):
    bag = write_bag(tmp_path / 'bag')
    out = tmp_path / 'out'
    train_from_recordings([str(bag)], tiny_models['params_vision'], out, quiet())
    with pytest.raises(RecordingError, match=r'holds features of another backbone '
                       r'\(vision_features'):
        train_from_recordings([str(bag)], tiny_models['params_pi0'], out, quiet())


def test_a_bag_still_being_recorded_says_stop_the_recorder(tmp_path, tiny_models):
    bag = write_bag(tmp_path / 'bag')
    (bag / 'metadata.yaml').unlink()          # what an unclosed recording looks like
    _fails(tmp_path, tiny_models, r'bag: no metadata.yaml yet: is its recorder still running\? '
           r'Stop it', [bag])


def test_not_a_bag(tmp_path, tiny_models):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagError, match='no rosbag2 directory'):
        train_from_recordings([str(tmp_path / 'empty')], tiny_models['params_pi0'],
                              tmp_path / 'out', quiet())


def test_cli_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, tiny_models):
    from aura_ros.train.__main__ import main
    bag = write_bag(tmp_path / 'bag', demo_shift=2.0)
    with pytest.raises(SystemExit) as exc:
        main(['episodes', str(bag), '--params', str(tiny_models['params_pi0']), '--out',
              str(tmp_path / 'out'), '--steps', '60'])
    message = str(exc.value.code)
    assert message.startswith('train episodes: ') and '\n' not in message
    assert 'to the nearest command' in message
    assert not (tmp_path / 'out' / 'memory.safetensors').exists()


@pytest.mark.slow
def test_quick_trains_aura_and_no_memory_and_steps_still_apply(tmp_path, tiny_models, capsys):
    from aura_ros.train.__main__ import main
    write_bag(tmp_path / 'bag', episodes=3, kinds=KINDS)
    assert main(['episodes', str(tmp_path / 'bag'), '--params', str(tiny_models['params_pi0']),
                 '--out', str(tmp_path / 'out'), '--quick', '--steps', '100',
                 '--tolerance', '0.02']) == 0
    assert 'quick run: 100 training steps, arms aura, no_memory' in capsys.readouterr().out
    report = json.loads((tmp_path / 'out' / 'report.json').read_text())
    assert report['settings']['steps'] == 100
    assert set(report['validation']) == {'base', 'aura', 'no_memory'}
    assert report['files'] == {'aura': 'memory.safetensors',
                               'no_memory': 'memory_no_memory.safetensors'}


def test_without_the_backbones_action_std_the_recorded_actions_set_the_unit(tmp_path,
                                                                           tiny_models):
    """A backbone block without action_std (a remote or LeRobot policy): errors and the write
    price are in units of the recorded actions' std, not radians."""
    import yaml

    from aura_ros.train.episodes import prepare
    params = yaml.safe_load(Path(tiny_models['params_pi0']).read_text())
    block = params['/**']['ros__parameters']['backbone']
    del block['action_std'], block['action_mean']
    params['policy_node']['ros__parameters']['command']['action_type'] = 'absolute'  # varied
    path = Path(tiny_models['root']) / 'pi0_no_std.yaml'
    path.write_text(yaml.safe_dump(params))
    write_bag(tmp_path / 'bag', episodes=3)
    prepared = prepare([str(tmp_path / 'bag')], str(path), tmp_path / 'out', quiet(tolerance=0.02))
    recorded = torch.cat([ep.expert for ep in prepared.train_data]).std(0)
    assert prepared.action_std == pytest.approx(recorded.tolist())
    assert min(prepared.action_std) > 0.01 and max(prepared.action_std) < 1.0
    with_std = prepare([str(tmp_path / 'bag')], str(tiny_models['params_pi0']), tmp_path / 'o2',
                       quiet(tolerance=0.02))
    assert with_std.action_std == [0.05, 0.05, 0.05]
