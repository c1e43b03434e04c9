"""LeRobotDataset v3.0 import and export (aura_ros.train.lerobot_format). The fixtures under
test/fixtures/lerobot were written by LeRobot 0.6.1's own writer (bench/lerobot/make_fixtures.py:
AV1 video, its parquet layout); their values are exact functions of (episode, frame)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from demo_bags import JOINTS, KINDS, write_bag

from aura_ros.train.lerobot_format import (
    DatasetError,
    DatasetKeys,
    ExportEpisode,
    iter_dataset_frames,
    scan_dataset,
    write_dataset,
)

FIXTURES = Path(__file__).parents[1] / 'fixtures' / 'lerobot'
SO101 = FIXTURES / 'so101_v3'
TWO_CAMERAS = FIXTURES / 'so101_two_cameras_v3'
MOTORS = ['shoulder_pan', 'shoulder_lift', 'elbow_flex', 'wrist_flex', 'wrist_roll', 'gripper']
LENGTHS = (24, 18, 30)
TASKS = ('pick up the red cube', 'press the blue button', 'pick up the red cube')


def fixture_state(episode, frame):          # make_fixtures.state_of, in degrees
    s = np.array([10.0 * episode + j + 0.5 * frame for j in range(6)])
    s[-1] = 20 + frame
    return s


def square_at(rgb):
    """(row, column) of the fixture's bright 8x8 square in a decoded frame."""
    bright = rgb.astype(int).sum(-1) > 400
    rows, cols = np.nonzero(bright)
    return int(round((rows.mean() - 4) / 8)), int(round(cols.mean() / 8 - 0.4375))


def test_a_dataset_written_by_lerobot_reads_as_episodes_in_radians_by_joint_name():
    joints = ['elbow_flex', 'shoulder_pan']               # a subset, in another order
    found = scan_dataset(SO101, DatasetKeys(), joints)
    assert [(s.index, s.instruction, s.success) for s in found.episodes] == [
        (0, TASKS[0], None), (1, TASKS[1], None), (2, TASKS[2], None)]
    assert len(found.frame_times) == sum(LENGTHS)
    want = np.array([fixture_state(e, f)[[2, 0]] for e, n in enumerate(LENGTHS)
                     for f in range(n)])
    np.testing.assert_allclose(found.joint_positions, np.radians(want), rtol=1e-6)
    np.testing.assert_allclose(found.demo_positions, np.radians(want + 1), rtol=1e-6)
    # every frame on its own episode's clock, 1/30 s apart, episodes far apart
    for span in found.episodes:
        frames = found.episode_frames(span)
        assert len(frames) == LENGTHS[span.index]
        np.testing.assert_allclose(np.diff(found.frame_times[frames]), 1 / 30, atol=1e-5)
    radians = scan_dataset(SO101, DatasetKeys(units='rad'), joints)
    np.testing.assert_allclose(radians.joint_positions, want, rtol=1e-6)


def test_lerobots_av1_video_decodes_to_the_right_frame_of_the_right_episode():
    wanted = {0, 7, 23, 24, 25, 41, 42, 71}              # episode edges among them
    frames = dict(iter_dataset_frames(SO101, DatasetKeys(), wanted))
    assert set(frames) == wanted
    starts = np.cumsum((0,) + LENGTHS)
    for i, rgb in frames.items():
        e = int(np.searchsorted(starts, i, side='right') - 1)
        f = i - starts[e]
        assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
        assert square_at(rgb) == (e, f % 8), i


def test_a_dataset_with_two_cameras_needs_the_camera_key():
    with pytest.raises(DatasetError, match='2 cameras .*observation.images.front, '
                       'observation.images.wrist.*--camera-key'):
        scan_dataset(TWO_CAMERAS, DatasetKeys(), MOTORS)
    front = dict(iter_dataset_frames(TWO_CAMERAS, DatasetKeys('observation.images.front'),
                                     {3}))[3]
    wrist = dict(iter_dataset_frames(TWO_CAMERAS, DatasetKeys('observation.images.wrist'),
                                     {3}))[3]
    assert square_at(front) == (0, 3)
    assert np.abs(wrist.astype(int) - (255 - front.astype(int))).mean() < 6   # the negative
    with pytest.raises(DatasetError, match="no camera 'observation.images.top'; cameras: "
                       'observation.images.front, observation.images.wrist'):
        scan_dataset(TWO_CAMERAS, DatasetKeys('observation.images.top'), MOTORS)


@pytest.mark.parametrize('keys, joints, match', [
    (DatasetKeys(state='observation.joints'), MOTORS,
     r"no feature 'observation.joints' \(--state-key\); features: observation.state, action"),
    (DatasetKeys(action='action.ee'), MOTORS, r"no feature 'action.ee' \(--action-key\)"),
    (DatasetKeys(), ['joint_1', 'shoulder_pan'],
     r"the parameter file's joints \['joint_1'\] are missing"),
])
def test_bad_keys_and_joints_are_one_clear_error(keys, joints, match):
    with pytest.raises(DatasetError, match=match):
        scan_dataset(SO101, keys, joints)


def _copy(tmp_path, src=SO101):
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_an_older_format_and_a_broken_video_are_refused_with_the_reason(tmp_path):
    old = _copy(tmp_path)
    info = json.loads((old / 'meta/info.json').read_text())
    (old / 'meta/info.json').write_text(json.dumps(dict(info, codebase_version='v2.1')))
    with pytest.raises(DatasetError, match='LeRobotDataset v2.1; this reader takes v3.0 '
                       r'\(convert a v2.1 dataset'):
        scan_dataset(old, DatasetKeys(), MOTORS)
    broken = _copy(tmp_path / 'b')
    video = next(broken.rglob('*.mp4'))
    video.write_bytes(video.read_bytes()[:len(video.read_bytes()) // 2])
    assert len(scan_dataset(broken, DatasetKeys(), MOTORS).frame_times) == 72  # no pixels yet
    with pytest.raises(DatasetError, match='episode 2: .*(cannot decode|has no frame at)'):
        list(iter_dataset_frames(broken, DatasetKeys(), {70}))
    video.unlink()
    with pytest.raises(DatasetError, match='is missing'):
        list(iter_dataset_frames(broken, DatasetKeys(), {0}))


def smooth_frames(n, e):
    """Frames a video codec keeps: a gradient that moves with the frame index."""
    y, x = np.mgrid[0:64, 0:64]
    return np.stack([np.stack([(x * 4 + 9 * f + 40 * e) % 256, y * 4 % 256,
                               np.full_like(x, 60 + 5 * f)], -1) for f in range(n)]
                    ).astype(np.uint8)


def test_export_round_trip_keeps_every_value_episode_and_outcome(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [ExportEpisode(smooth_frames(n, e), rng.uniform(-1, 1, (n, 3)),
                              rng.uniform(-1, 1, (n, 3)), task, ok,
                              kinds=(KINDS * 2)[:n] if e == 0 else None)
                for e, (n, task, ok) in enumerate(((12, 'reach', True), (9, 'push', False)))]
    info = write_dataset(tmp_path / 'ds', episodes, 30, JOINTS, robot_type='sim',
                         kind_names=sorted(set(KINDS) | {''}))
    assert info['codebase_version'] == 'v3.0' and info['total_frames'] == 21
    assert info['features']['observation.state']['names'] == [f'{j}.pos' for j in JOINTS]
    found = scan_dataset(tmp_path / 'ds', DatasetKeys(), JOINTS)
    assert [(s.instruction, s.success) for s in found.episodes] == [('reach', True),
                                                                  ('push', False)]
    np.testing.assert_allclose(found.joint_positions,
                               np.concatenate([ep.state for ep in episodes]), atol=1e-6)
    np.testing.assert_allclose(found.demo_positions,
                               np.concatenate([ep.action for ep in episodes]), atol=1e-6)
    assert found.frame_kinds == (KINDS * 2)[:12] + [''] * 9
    frames = dict(iter_dataset_frames(tmp_path / 'ds', DatasetKeys(), None))
    want = np.concatenate([ep.frames for ep in episodes])
    errors = [np.abs(frames[i].astype(int) - want[i]).mean() for i in range(21)]
    assert max(errors) < 6                                    # AV1 at LeRobot's crf 30
    # the right frame: its own is nearer than its neighbours
    assert all(errors[i] < np.abs(frames[i].astype(int) - want[i + 1]).mean()
               for i in range(20))
    with pytest.raises(DatasetError, match='exists and is not empty'):
        write_dataset(tmp_path / 'ds', episodes, 30, JOINTS)


def test_export_from_bags_carries_what_training_reads(tmp_path):
    """export-lerobot: the exported dataset, read back, gives the frames, joint states and
    demonstrated targets the bag reader gives, episode by episode (degrees on disk)."""
    from aura_ros.train.__main__ import main
    from aura_ros.train.episodes import Settings, command_setup, read_recordings
    bag = write_bag(tmp_path / 'bag', episodes=3, seed=4, kinds=KINDS, image=(64, 64))
    params = tmp_path / 'p.yaml'
    params.write_text(yaml.safe_dump({'policy_node': {'ros__parameters': {'command': {
        'joint_names': JOINTS, 'lower_limits': [-1.0] * 3, 'upper_limits': [1.0] * 3,
        'max_delta': 0.05}}}}))
    assert main(['export-lerobot', str(bag), '--params', str(params), '--out',
                 str(tmp_path / 'ds'), '--tolerance', '0.02']) == 0
    info = json.loads((tmp_path / 'ds/meta/info.json').read_text())
    assert (info['fps'], info['total_episodes'], info['total_frames']) == (30, 3, 36)
    eps, _ = read_recordings([str(bag)], command_setup(params),
                             Settings(tolerance=0.02, progress=False))
    found = scan_dataset(tmp_path / 'ds', DatasetKeys(), JOINTS)
    np.testing.assert_allclose(found.joint_positions,
                               np.concatenate([ep.positions_all[ep.kept] for ep in eps]),
                               atol=1e-5)
    np.testing.assert_allclose(found.demo_positions,
                               np.concatenate([ep.targets for ep in eps]), atol=1e-5)
    assert [(s.success, s.index) for s in found.episodes] == [(True, 0), (False, 1), (True, 2)]
    assert found.frame_kinds == KINDS * 3
    raw = json.loads((tmp_path / 'ds/meta/stats.json').read_text())
    assert raw['observation.state']['count'] == [36]
    assert np.allclose(raw['observation.state']['mean'],
                       np.degrees(found.joint_positions).mean(0), atol=1e-3)


@pytest.mark.slow
def test_train_episodes_on_a_lerobot_dataset(tmp_path, tiny_models):
    """The LeRobot-written fixture through ``train episodes`` (three of its joints by name,
    degrees to radians): the same report and checkpoint as from bags."""
    from aura_ros.train.__main__ import main
    params = yaml.safe_load(Path(tiny_models['params_pi0']).read_text())
    params['policy_node']['ros__parameters']['command']['joint_names'] = MOTORS[:3]
    path = Path(tiny_models['root']) / 'so101.yaml'      # beside the model it names
    path.write_text(yaml.safe_dump(params))
    assert main(['episodes', str(FIXTURES), '--camera-key', 'observation.images.front',
                 '--params', str(path), '--out', str(tmp_path / 'out'), '--steps', '60',
                 '--arms', 'aura,no_memory']) == 0
    report = json.loads((tmp_path / 'out/report.json').read_text())
    # both fixtures (the folder holds two datasets): 3 + 2 episodes, 72 + 16 frames
    assert report['episodes']['total'] == 5 and report['frames'] == 88
    assert report['frames_dropped_unsynced'] == 0
    assert (tmp_path / 'out/memory.safetensors').is_file()


def test_episode_numbers_row_order_and_several_data_files_do_not_change_what_is_read(tmp_path):
    """Episodes numbered 7, 3, 5, rows shuffled over two data files in two chunk folders: the
    same frames, values and pixels per episode as the original (read in episode order)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    ds = _copy(tmp_path)
    renumber = {0: 7, 1: 3, 2: 5}
    data = pq.read_table(ds / 'data/chunk-000/file-000.parquet').to_pydict()
    data['episode_index'] = [renumber[e] for e in data['episode_index']]
    order = np.random.default_rng(0).permutation(len(data['episode_index']))
    shuffled = {k: [v[i] for i in order] for k, v in data.items()}
    (ds / 'data/chunk-000/file-000.parquet').unlink()
    for part, rows in enumerate((slice(0, 40), slice(40, None))):
        folder = ds / f'data/chunk-00{part}'
        folder.mkdir(exist_ok=True)
        pq.write_table(pa.table({k: v[rows] for k, v in shuffled.items()}),
                       folder / f'file-00{part}.parquet')
    meta = pq.read_table(ds / 'meta/episodes/chunk-000/file-000.parquet').to_pydict()
    meta['episode_index'] = [renumber[e] for e in meta['episode_index']]
    pq.write_table(pa.table(meta), ds / 'meta/episodes/chunk-000/file-000.parquet')
    before = scan_dataset(SO101, DatasetKeys(), MOTORS)
    after = scan_dataset(ds, DatasetKeys(), MOTORS)
    assert [s.index for s in after.episodes] == [3, 5, 7]
    assert [s.instruction for s in after.episodes] == [TASKS[1], TASKS[2], TASKS[0]]
    # episode 3 (was 1) first: its 18 frames, then 5 (was 2), then 7 (was 0)
    old = {s.index: before.episode_frames(s) for s in before.episodes}
    mapping = np.concatenate([old[1], old[2], old[0]])
    np.testing.assert_array_equal(after.joint_positions, before.joint_positions[mapping])
    frames = dict(iter_dataset_frames(ds, DatasetKeys(), {0, 17, 18, 71}))
    assert square_at(frames[0]) == (1, 0) and square_at(frames[17]) == (1, 17 % 8)
    assert square_at(frames[18]) == (2, 0) and square_at(frames[71]) == (0, 23 % 8)


def test_a_folder_of_datasets_gives_each():
    from aura_ros.train.episodes import find_sources
    assert [p.name for p in find_sources([str(FIXTURES)])] == ['so101_two_cameras_v3',
                                                                'so101_v3']


def test_a_folder_with_a_dataset_and_a_bag_gives_both(tmp_path):
    from aura_ros.train.episodes import find_sources
    _copy(tmp_path / 'mix')
    write_bag(tmp_path / 'mix' / 'bag1')
    assert sorted(p.name for p in find_sources([str(tmp_path / 'mix')])) == ['bag1', 'so101_v3']


def test_what_is_read_of_a_dataset_is_part_of_its_cache_identity():
    front = scan_dataset(TWO_CAMERAS, DatasetKeys('observation.images.front'), MOTORS).key
    wrist = scan_dataset(TWO_CAMERAS, DatasetKeys('observation.images.wrist'), MOTORS).key
    radians = scan_dataset(TWO_CAMERAS, DatasetKeys('observation.images.front', units='rad'),
                           MOTORS).key
    fewer = scan_dataset(TWO_CAMERAS, DatasetKeys('observation.images.front'), MOTORS[:3]).key
    assert len({front, wrist, radians, fewer}) == 4
    assert front == scan_dataset(TWO_CAMERAS, DatasetKeys('observation.images.front'),
                                 MOTORS).key


def test_files_beside_lerobots_own_do_not_change_a_datasets_identity(tmp_path):
    ds = _copy(tmp_path)
    before = scan_dataset(ds, DatasetKeys(), MOTORS).key
    (ds / 'aura_ros_export.json').write_text('{"key": "anything"}')    # a tool's marker
    assert scan_dataset(ds, DatasetKeys(), MOTORS).key == before
    (ds / 'meta' / 'info.json').write_text((ds / 'meta' / 'info.json').read_text() + ' ')
    assert scan_dataset(ds, DatasetKeys(), MOTORS).key != before


def test_encoding_leaves_the_callers_scheduling_alone(tmp_path):
    """SVT-AV1 makes the thread that starts it SCHED_FIFO 99 where it can (root): an export must
    not leave the process real-time (threads it starts later would inherit it)."""
    import os
    before = (os.sched_getscheduler(0), os.sched_getparam(0))
    write_dataset(tmp_path / 'ds', [ExportEpisode(smooth_frames(4, 0), np.zeros((4, 3)),
                                                  np.zeros((4, 3)), 'a', True)], 30, JOINTS)
    assert (os.sched_getscheduler(0), os.sched_getparam(0)) == before


def test_unknown_outcomes_are_not_written_as_failures_and_episodes_may_stream(tmp_path):
    rng = np.random.default_rng(1)

    def episodes():                       # a generator: written as each episode comes
        for e, ok in enumerate((True, None)):
            yield ExportEpisode(smooth_frames(6, e), rng.uniform(-1, 1, (6, 3)),
                                rng.uniform(-1, 1, (6, 3)), 'reach', ok)
    info = write_dataset(tmp_path / 'ds', episodes(), 30, JOINTS, outcomes_known=False)
    assert 'next.success' not in info['features'] and info['total_frames'] == 12
    found = scan_dataset(tmp_path / 'ds', DatasetKeys(), JOINTS)
    assert [s.success for s in found.episodes] == [None, None]
    assert not (tmp_path / 'ds.partial').exists()
    listed = [ExportEpisode(smooth_frames(4, 0), np.zeros((4, 3)), np.zeros((4, 3)), 'a', None)]
    assert 'next.success' not in write_dataset(tmp_path / 'ds2', listed, 30, JOINTS)['features']
