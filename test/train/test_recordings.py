"""Recorded streams -> aligned samples: nearest matches within the tolerance under jittered
stamps, drops counted by reason, clock problems reported with the offsets, and the action
convention the runner applies."""
import numpy as np
import pytest

from aura_ros.train.recordings import RecordingError, align, demonstrated_actions, nearest


def streams(seed=0, frames=60, shift=0.0):
    """30 Hz frames, 100 Hz joint states and 50 Hz commands, each stamp jittered by +-4 ms;
    joints and commands follow known functions of time so a match can be checked."""
    rng = np.random.default_rng(seed)
    jitter = lambda n: rng.uniform(-0.004, 0.004, n)                 # noqa: E731
    t_f = np.arange(frames) / 30.0 + jitter(frames)
    t_j = np.arange(int(frames / 30 * 100) + 5) / 100.0 + jitter(int(frames / 30 * 100) + 5)
    t_d = np.arange(int(frames / 30 * 50) + 5) / 50.0 + jitter(int(frames / 30 * 50) + 5)
    q = np.stack([t_j, -t_j], 1)
    c = np.stack([t_d + 1.0, -t_d + 1.0], 1)
    return t_f, t_j + shift, q, t_d + shift, c


def test_nearest_picks_the_closest_sample_on_either_side():
    idx, off = nearest([0.0, 1.0, 2.0], [0.4, 0.6, 2.5, -1.0])
    assert idx.tolist() == [0, 1, 2, 0]
    assert off == pytest.approx([0.4, -0.4, 0.5, -1.0])


def test_jittered_streams_align_every_frame_with_its_nearest_samples():
    t_f, t_j, q, t_d, c = streams()
    a = align(t_f, t_j, q, t_d, c, tolerance=0.02)
    assert a.frames.tolist() == list(range(len(t_f))) and sum(a.dropped.values()) == 0
    # joints sampled every 10 ms: the match is within 5 ms + jitter of the frame's time
    assert np.abs(a.positions[:, 0] - t_f).max() <= 0.005 + 0.008 + 1e-9
    assert np.abs(a.targets[:, 0] - 1.0 - t_f).max() <= 0.010 + 0.008 + 1e-9
    assert a.offsets_s['joint_states'] < 0.005


def test_frames_without_a_command_are_dropped_and_counted():
    t_f, t_j, q, t_d, c = streams()
    gap = (t_d > 0.5) & (t_d < 1.0)                  # the teleop device paused for 0.5 s
    a = align(t_f, t_j, q, t_d[~gap], c[~gap], tolerance=0.03)
    lost = (t_f > 0.5 + 0.03) & (t_f < 1.0 - 0.03)
    assert a.dropped['no_demonstration'] >= lost.sum() > 0
    assert a.dropped['no_joint_state'] == 0
    assert not set(np.flatnonzero(lost)) & set(a.frames.tolist())


def test_streams_on_different_clocks_are_refused_with_the_offsets_found():
    t_f, t_j, q, t_d, c = streams(shift=100.0)       # e.g. header stamps vs receive times
    with pytest.raises(RecordingError,
                       match=r'joint state 99\.\d+ s, to the nearest command 99\.\d+ s'):
        align(t_f, t_j, q, t_d, c, tolerance=0.05)


@pytest.mark.parametrize('bad, match', [
    (dict(frame_times=[]), 'no frames'),
    (dict(joint_times=[], joint_positions=np.zeros((0, 2))), 'no joint states'),
    (dict(demo_times=[], demo_positions=np.zeros((0, 2))), 'no demonstrated commands'),
    (dict(demo_positions=np.zeros((3, 3))), '2 joints, demonstrated commands 3'),
    (dict(tolerance=0.0), 'tolerance'),
])
def test_bad_recordings_get_one_clear_error(bad, match):
    args = dict(frame_times=[0.0, 0.1, 0.2], joint_times=[0.0, 0.1, 0.2],
                joint_positions=np.zeros((3, 2)), demo_times=[0.0, 0.1, 0.2],
                demo_positions=np.zeros((3, 2)))
    args.update(bad)
    with pytest.raises(RecordingError, match=match):
        align(**args)


def test_action_conventions_are_the_runners():
    q = np.array([[0.0, 1.0], [0.5, 1.0]])
    c = np.array([[0.1, 0.8], [0.5, 1.2]])
    assert demonstrated_actions(q, c, 'delta') == pytest.approx(c - q)   # runner: q + a
    assert demonstrated_actions(q, c, 'absolute') == pytest.approx(c)
    with pytest.raises(RecordingError, match='action_type'):
        demonstrated_actions(q, c, 'velocity')
