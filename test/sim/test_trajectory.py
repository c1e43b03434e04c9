"""TrajectoryFollower: joint_trajectory_controller's linear interpolation of position-only
trajectories (start from the commanded position, reach each point at its time, hold the last,
a new trajectory replaces the old one from where the command was)."""
import numpy as np
import pytest

from aura_ros.sim.trajectory import TrajectoryFollower


def test_interpolates_from_the_measured_position_through_each_point_then_holds():
    f = TrajectoryFollower()
    assert f.sample(0.0) is None and f.final() is None
    f.set(10.0, [[1.0, 2.0], [3.0, 2.0]], [0.5, 1.5], current=[0.0, 0.0])
    assert f.sample(9.0) == pytest.approx([0.0, 0.0])        # before the start: holds
    assert f.sample(10.25) == pytest.approx([0.5, 1.0])      # half way to point 1
    assert f.sample(10.5) == pytest.approx([1.0, 2.0])       # point 1 on time
    assert f.sample(11.0) == pytest.approx([2.0, 2.0])       # half way to point 2
    assert f.sample(20.0) == pytest.approx([3.0, 2.0])       # the last point is held
    assert f.final() == pytest.approx([3.0, 2.0])


def test_a_new_trajectory_starts_where_the_command_was_not_where_the_arm_is():
    f = TrajectoryFollower()
    f.set(0.0, [[2.0]], [1.0], current=[0.0])
    f.set(0.5, [[0.0]], [0.5], current=[9.0])     # measured position ignored: 1.0 commanded
    assert f.sample(0.5) == pytest.approx([1.0])
    assert f.sample(0.75) == pytest.approx([0.5])
    assert f.sample(1.0) == pytest.approx([0.0])


def test_zero_time_points_and_stamped_starts():
    f = TrajectoryFollower()
    f.set(0.0, [[1.0]], [0.0], current=[0.0])    # sim_teleop's points: commanded at once
    assert f.sample(0.0) == pytest.approx([1.0])
    # header stamp 1 s ahead: due at 3.0, moving from arrival (as the controller does)
    f.set(1.0, [[3.0]], [1.0], current=[0.0], start=2.0)
    assert f.sample(1.5) == pytest.approx([1.5])
    assert f.sample(3.0) == pytest.approx([3.0])
    f.clear()
    assert f.sample(3.0) is None


def test_a_stamp_in_the_past_skips_the_points_already_due_without_a_jump():
    f = TrajectoryFollower()
    f.set(10.0, [[2.0], [4.0]], [0.5, 1.5], current=[0.0], start=9.0)   # due 9.5, 10.5
    assert f.sample(10.0) == pytest.approx([0.0])      # no jump on arrival
    assert f.sample(10.25) == pytest.approx([2.0])     # half way to the point still ahead
    f.set(20.0, [[5.0]], [0.0], current=[0.0], start=19.99)   # a teleop point, stamped
    assert f.sample(20.0) == pytest.approx([5.0])      # all due: the last point at once


@pytest.mark.parametrize('points, times, why', [
    ([[1.0], [2.0]], [0.5, 0.2], 'non-decreasing'),
    ([[1.0]], [-0.1], '>= 0'),
    ([[np.nan]], [0.1], 'non-finite'),
    ([[1.0, 2.0]], [0.1], 'joints'),
    ([], [], 'points'),
])
def test_malformed_trajectories_are_refused_and_the_old_one_kept(points, times, why):
    f = TrajectoryFollower()
    f.set(0.0, [[1.0]], [0.0], current=[0.0])
    with pytest.raises(ValueError, match=why):
        f.set(1.0, points, times, current=[0.0])
    assert f.sample(2.0) == pytest.approx([1.0])
