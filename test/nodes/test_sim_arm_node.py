"""sim_arm_node as a process over DDS: real-time mode (joint states and frames on their own
clocks, the arm tracking the newest command), no busy waiting, a clean exit on SIGINT."""
import signal
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray

from aura_ros.sim.arm import ArmTaskConfig
from aura_ros.tools.processes import executable
from conftest import spawn
from helpers import spin_until

pytestmark = pytest.mark.ros


def start_sim(*params):
    args = ['-p', "policy:=''", '-p', 'command_type:=float64_multi_array']
    for p in params:
        args += ['-p', p]
    return spawn([executable('sim_arm_node'), '--ros-args', *args])


def cpu_seconds(pid):
    fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0   # utime + stime, clock ticks


def sigint_exit(proc):
    """SIGINT, then the output once it exited (a hang fails here, at the deadline; the time
    to exit is measured by ``bench reliability --parts shutdown``)."""
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=10)[0]


def test_real_time_mode_streams_on_its_own_clocks_and_tracks_commands(ros_context):
    proc = start_sim('lockstep:=false', 'rate:=30.0', 'joint_state_rate:=100.0')
    node = rclpy.create_node('sim_probe', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    joints, frames = [], []       # (stamp s, positions), (stamp s, lamp is green): sim's clock

    def stamp(msg):
        return msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec

    node.create_subscription(JointState, 'joint_states',
                             lambda m: joints.append((stamp(m), np.array(m.position))), 100)

    def on_frame(msg):
        lamp = np.frombuffer(msg.data, np.uint8)[:3]   # top-left pixel: red before go
        frames.append((stamp(msg), bool(lamp[1] > 150)))

    node.create_subscription(Image, 'camera/image_raw', on_frame, 10)
    commands = node.create_publisher(Float64MultiArray, 'aura/joint_commands', 10)
    try:
        assert spin_until(executor, lambda: len(frames) > 5, 30.0)
        n_js, n_frames = len(joints), len(frames)
        spin_until(executor, lambda: False, 2.0)
        # each stream on its own clock, read from the sim's stamps: the median interval is the
        # configured period (a loaded machine may stretch a few intervals, not the median)
        js_dt = np.median(np.diff([t for t, _ in joints[n_js:]]))
        frame_dt = np.median(np.diff([t for t, _ in frames[n_frames:]]))
        assert js_dt == pytest.approx(1 / 100.0, abs=0.003), js_dt
        assert frame_dt == pytest.approx(1 / 30.0, abs=0.006), frame_dt
        # at go (lamp green) command a pose 0.6 rad away on joint 1, repeatedly for 0.4 s
        assert spin_until(executor, lambda: frames[-1][1], 10.0)
        start_q = joints[-1][1]
        target = start_q + np.array([0.6, 0.0, 0.0])
        n_before = len(joints)
        t_cmd = time.monotonic()
        while time.monotonic() < t_cmd + 0.4:
            commands.publish(Float64MultiArray(data=[float(x) for x in target]))
            spin_until(executor, lambda: False, 0.05)
        stamps = np.array([t for t, _ in joints[n_before:]])
        window = np.array([q[0] for _, q in joints[n_before:]])
        assert window.max() == pytest.approx(target[0], abs=1e-6)     # reached the command
        # the motion up to reaching it (the episode may time out and reset to home after)
        reached = int(np.argmax(window >= target[0] - 1e-6)) + 1
        stamps, window = stamps[:reached], window[:reached]
        speed = ArmTaskConfig().max_joint_speed * 30.0                  # rad/s, 4.5
        steps = np.abs(np.diff(window))
        # continuous motion at the speed limit between samples (by the sim's stamps, give or
        # take a physics tick of 2 ms at either end), not per-frame jumps; many small moves
        allowed = speed * (np.diff(stamps) + 2 / 500.0) + 1e-6
        assert (steps <= allowed).all(), (steps, np.diff(stamps))
        assert (steps > 1e-9).sum() >= 8
    finally:
        out = sigint_exit(proc)
    assert proc.returncode == 0 and 'Traceback' not in out, out[-2000:]


def go_stamp(frames):
    """The stamp of the first green frame right after a red one in ``frames`` ((stamp, green)
    pairs), or None."""
    return next((t for (_, was), (t, now) in zip(frames, frames[1:]) if now and not was), None)


def test_real_time_mode_follows_a_joint_trajectory_like_joint_trajectory_controller(
        ros_context):
    """A stamped two-point trajectory (joint 1: +0.15 rad at 0.3 s, +0.3 rad at 0.6 s, slower
    than the arm's limit): the joint samples follow the linear interpolation between the
    points by the sim's stamps, not a jump to the last point, then hold it."""
    from builtin_interfaces.msg import Duration
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
    proc = start_sim('lockstep:=false', 'command_type:=joint_trajectory')
    node = rclpy.create_node('sim_probe', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    joints, green = [], []

    def stamp(msg):
        return msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec

    node.create_subscription(JointState, 'joint_states',
                             lambda m: joints.append((stamp(m), np.array(m.position))), 100)
    node.create_subscription(Image, 'camera/image_raw', lambda m: green.append(
        (stamp(m), bool(np.frombuffer(m.data, np.uint8)[1] > 150))), 10)
    commands = node.create_publisher(JointTrajectory, 'aura/joint_commands', 10)
    try:
        # go seen as it happens (a red frame, then green): a probe that joined after go (late
        # discovery on a loaded machine) would take a late green frame for go, and the episode
        # would time out under the trajectory; then it waits for the next episode's go
        assert spin_until(executor, lambda: go_stamp(green) is not None and green[-1][1], 30.0)
        q0 = joints[-1][1]
        # due from the go frame's stamp (the sim's clock), not from when this probe saw it: a
        # loaded machine's delay must not push the hold past the episode's time after go
        start = go_stamp(green) + 0.05
        msg = JointTrajectory(joint_names=['joint_1', 'joint_2', 'joint_3'], points=[
            JointTrajectoryPoint(positions=[float(q0[0] + d), float(q0[1]), float(q0[2])],
                                 time_from_start=Duration(sec=0, nanosec=int(t * 1e9)))
            for d, t in ((0.15, 0.3), (0.3, 0.6))])
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(start), int(start % 1 * 1e9)
        commands.publish(msg)
        spin_until(executor, lambda: joints[-1][0] > start + 0.7, 5.0)
    finally:
        out = sigint_exit(proc)
    assert proc.returncode == 0 and 'Traceback' not in out, out[-2000:]
    # the second segment, from point 1 (due at 0.3 s) to point 2 (0.6 s), whatever the
    # message's transit time (the first segment starts on arrival)
    during = [(t - start, q[0] - q0[0]) for t, q in joints if start + 0.31 < t < start + 0.58]
    assert len(during) >= 15
    expected = np.interp([t for t, _ in during], [0.0, 0.3, 0.6], [0.0, 0.15, 0.3])
    # a physics tick (2 ms) and a sample's stamp apart at 0.5 rad/s: well inside 0.01 rad
    assert np.abs(np.array([d for _, d in during]) - expected).max() < 0.01, during
    after = [q[0] - q0[0] for t, q in joints if start + 0.62 < t < start + 0.7]
    # the last point held, until the episode ends (timeout or a dwell on a pad: home again)
    held = after[:next((i for i, d in enumerate(after) if abs(d - 0.3) > 0.05), len(after))]
    assert held and np.allclose(held, 0.3, atol=1e-6), after


@pytest.mark.slow
def test_waiting_for_commands_costs_next_to_no_cpu_and_sigint_ends_the_wait():
    """Blocked in a 30 s wait for a command: next to no CPU, and SIGINT ends the wait (the
    process is gone before communicate's 10 s deadline, not after the 30 s timeout)."""
    proc = start_sim('lockstep:=true', 'command_timeout:=30.0')
    try:
        time.sleep(6.0)                    # start-up, first frame published, now waiting
        before = cpu_seconds(proc.pid)
        time.sleep(4.0)
        used = cpu_seconds(proc.pid) - before
    finally:
        out = sigint_exit(proc)
    assert used < 0.2, f'{used:.2f} s of CPU in 4 s of waiting'
    assert proc.returncode == 0 and 'Traceback' not in out, out[-2000:]


def test_mujoco_engine_in_lockstep_answers_commands_frame_by_frame(ros_context):
    """engine:=mujoco over DDS: the SO-101's five joints in /joint_states, a 64x64 frame per
    answered command (lockstep), a command of the wrong width ignored with a warning."""
    pytest.importorskip('aura_ros.sim.mujoco_arm', reason='MuJoCo not installed')
    proc = start_sim('engine:=mujoco', 'command_timeout:=30.0')
    node = rclpy.create_node('mujoco_probe', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    joints, frames = [], []
    node.create_subscription(JointState, 'joint_states', joints.append, 100)
    node.create_subscription(Image, 'camera/image_raw', frames.append, 100)
    commands = node.create_publisher(Float64MultiArray, 'aura/joint_commands', 10)
    try:
        assert spin_until(executor, lambda: frames and joints, 60.0), 'no first frame'
        assert list(joints[-1].name) == ['shoulder_pan', 'shoulder_lift', 'elbow_flex',
                                         'wrist_flex', 'wrist_roll']
        assert (frames[-1].width, frames[-1].height, frames[-1].encoding) == (64, 64, 'rgb8')
        commands.publish(Float64MultiArray(data=[0.0, 0.0, 0.0]))      # wrong width
        for k in range(8):                   # lockstep: one frame per answered command
            n = len(frames)
            q = list(joints[-1].position)
            commands.publish(Float64MultiArray(data=q))
            assert spin_until(executor, lambda n=n: len(frames) > n, 10.0), f"no frame {k}"
        assert len(frames) >= 9
    finally:
        out = sigint_exit(proc)
    assert proc.returncode == 0 and 'Traceback' not in out, out[-2000:]
    assert 'ignored invalid command [0.0, 0.0, 0.0]' in out


@pytest.mark.slow
def test_episodes_wait_for_the_policy_to_be_active_and_results_say_who_drove_them(ros_context):
    """However long the policy takes to configure, no episode runs before it is active; each
    result counts the commands the episode received; after the last episode the sim disarms
    the policy (the run is over)."""
    from rclpy.lifecycle import Node as LifecycleNode
    from std_srvs.srv import Trigger

    from aura_ros.msg import EpisodeResult, FrameTruth
    proc = spawn([executable('sim_arm_node'), '--ros-args', '-p', 'episodes:=1', '-p',
                  'command_type:=float64_multi_array', '-p', 'command_timeout:=0.05'])
    policy = LifecycleNode('policy_node', context=ros_context)   # a stand-in policy
    calls = {'reset_memory': 0, 'disarm': 0}

    def service(name):
        def answer(request, response):
            calls[name] += 1
            response.success = True
            return response
        return answer
    for name in calls:
        policy.create_service(Trigger, f'~/{name}', service(name))
    commands = policy.create_publisher(Float64MultiArray, 'aura/joint_commands', 10)
    results, frames = [], []
    policy.create_subscription(EpisodeResult, 'sim/episode_result', results.append, 10)
    policy.create_subscription(Image, 'camera/image_raw', frames.append, 10)
    truths = []
    policy.create_subscription(FrameTruth, 'sim/frame_truth', truths.append, 100)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(policy)
    try:
        spin_until(executor, lambda: False, 4.0)        # unconfigured: the sim waits
        assert frames == [] and results == [] and calls['reset_memory'] == 0
        policy.trigger_configure()
        spin_until(executor, lambda: False, 1.0)        # inactive: still waiting
        assert frames == []
        policy.trigger_activate()
        answered = 0

        def answer_frames():
            nonlocal answered
            while answered < len(frames) and answered < 10:   # answer the first 10 frames
                commands.publish(Float64MultiArray(data=[1.5, -2.0, 2.0]))
                answered += 1
            return bool(results)
        assert spin_until(executor, answer_frames, 60)
        spin_until(executor, lambda: calls['disarm'] == 1, 5)
        assert calls == {'reset_memory': 1, 'disarm': 1}
        assert results[0].commands == 10 and results[0].steps > 10
        # every frame went out with its ground truth (same stamp), in order, task v2
        stamp = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in frames]
        assert [(t.header.stamp.sec, t.header.stamp.nanosec) for t in truths] == stamp
        assert [t.step for t in truths] == list(range(len(frames)))
        kinds = [t.kind for t in truths]
        assert kinds[0] in ('pre_cue', 'distractor') and kinds.count('cue_onset') == 1
        assert kinds[-1] == 'go' and truths[-1].cued_target == results[0].target
        output = proc.communicate(timeout=20)[0]
        assert 'waiting for policy_node to be active' in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        policy.destroy_node()
