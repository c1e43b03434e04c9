"""sim_arm_node: the simulated camera arm (aura_ros.sim) as a ROS 2 robot.

``engine``: ``planar`` (the 3-joint arm drawn from above, the default) or ``mujoco`` (the SO-101
in MuJoCo, 5 joints, seen by a perspective camera; aura_ros.sim.mujoco_arm). The joint names
come from ``joint_names`` (default: the engine's own).

Publishes camera/image_raw (rgb8) and joint_states, and with every frame its ground truth on
sim/frame_truth (aura_ros/FrameTruth: the frame's kind, e.g. cue_onset or distractor, with the
frame's stamp: recordings can count writes per kind), follows joint position commands
(trajectory_msgs/JointTrajectory or std_msgs/Float64MultiArray, by ``command_type``), runs
episodes back to back and publishes each result on sim/episode_result (and logs it). Episode
boundaries go out on sim/episode_events (aura_ros/EpisodeEvent: START with the seed before the
episode's first frame, END with the outcome after its last): what sim_teleop follows and what
episode_recorder records next to the frames.

``lockstep`` (default): publish a frame, wait for the command that answers it (or
``command_timeout``), step. Results then do not depend on how fast the policy runs.
Real time (``lockstep: false``): the joints track the newest command at ``physics_rate`` (the
per-frame speed limit spread over time), joint states go out at ``joint_state_rate`` and camera
frames at ``rate`` (the task's clock), whatever the policy does, like a real arm.
A JointTrajectory is followed as joint_trajectory_controller follows one (positions only,
aura_ros.sim.trajectory): it replaces the previous one on arrival and the commanded position
moves linearly from where it was commanded to each point, due ``time_from_start`` after the
header stamp (or the arrival when unstamped), then holds the last one. In lockstep a frame is
not wall time: the frame's command is the newest trajectory's last point. Float64MultiArray:
the newest array.
The sim serves the policy node named by ``policy`` ("" = none: teleoperation). Before each
episode it waits until the policy is active (its lifecycle GetState: however long configuring
takes, e.g. a first start that compiles), then calls its ~/reset_memory (std_srvs/Trigger) so
that memory does not leak across episodes; after the last of a set number of episodes it calls
its ~/disarm (the run is over: the policy stops commanding, rather than reporting that its
frames stopped). Each EpisodeResult says how many commands the episode received:
one with none was not driven by a policy and is not a policy result (logged as such). Waiting
costs next to no CPU (blocking waits, one single-threaded executor), and SIGINT stops the node
within a second.
"""
import sys
import threading
import time

import numpy as np
import rclpy
from lifecycle_msgs.msg import State as LifecycleState
from lifecycle_msgs.srv import GetState
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from aura_ros import topics
from aura_ros.imaging import rgb_to_msg_fields
from aura_ros.msg import EpisodeEvent, EpisodeResult, FrameTruth
from aura_ros.nodes.common import EVENTS_QOS, declare_params, run_node
from aura_ros.params import SIM_PARAMS
from aura_ros.sim.arm import ArmTaskConfig
from aura_ros.sim.engines import make_env
from aura_ros.sim.realtime import RealtimeArm
from aura_ros.sim.trajectory import TrajectoryFollower


class SimArmNode(Node):
    def __init__(self, **kwargs):
        super().__init__('sim_arm_node', **kwargs)
        self.p = declare_params(self, SIM_PARAMS)
        self.env = make_env(self.p['engine'], ArmTaskConfig(
            variant=self.p['variant'], image_size=self.p['image_size']))
        self.joint_names = list(self.p['joint_names']) or list(self.env.joint_names)
        if len(self.joint_names) != self.env.n_joints:
            raise ValueError(f"joint_names has {len(self.joint_names)} names, the "
                             f"{self.p['engine']} arm has {self.env.n_joints} joints")
        self.camera = self.create_publisher(Image, self.p['camera_topic'], 10)
        self.joints = self.create_publisher(JointState, self.p['joint_states_topic'], 10)
        self.results = self.create_publisher(EpisodeResult, topics.EPISODE_RESULT, 10)
        self.events = self.create_publisher(EpisodeEvent, topics.SIM_EPISODE_EVENTS, EVENTS_QOS)
        self.truth = self.create_publisher(FrameTruth, topics.FRAME_TRUTH, 10)
        self.episode_index = 0
        if self.p['command_type'] == 'joint_trajectory':
            self.create_subscription(JointTrajectory, self.p['command_topic'], self.on_trajectory,
                                     10)
        else:
            self.create_subscription(Float64MultiArray, self.p['command_topic'],
                                     self.on_array, 10)
        policy = self.p['policy'].rstrip('/')
        self.reset_client = self.state_client = self.disarm_client = None
        if policy:
            self.reset_client = self.create_client(Trigger, f'{policy}/reset_memory')
            self.state_client = self.create_client(GetState, f'{policy}/get_state')
            if self.p['episodes']:
                self.disarm_client = self.create_client(Trigger, f'{policy}/disarm')
        self.episode_commands = 0              # commands received during the current episode
        self.command = None                    # lockstep / arrays: the newest target
        self.trajectory = TrajectoryFollower()   # real time: JointTrajectory over time
        self.command_event = threading.Event()
        self.stop = threading.Event()          # set on shutdown: the episode thread returns
        self.finished = threading.Event()
        self.lock = threading.Lock()           # env: episode thread vs physics in real time
        self.realtime = RealtimeArm(self.env, self.p['physics_rate'],
                                    self.p['joint_state_rate'], self.p['rate'], self.lock)
        self.episode_results = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    # ---- commands ----------------------------------------------------------------------------
    def on_trajectory(self, msg):
        if not msg.points:
            return
        index = {n: i for i, n in enumerate(msg.joint_names)}
        if any(j not in index for j in self.joint_names):
            self.get_logger().warning(f'ignored trajectory for joints {msg.joint_names} '
                                      f'(this arm: {self.joint_names})',
                                      throttle_duration_sec=2.0)
            return
        if any(len(p.positions) != len(msg.joint_names) for p in msg.points):
            self.get_logger().warning('ignored trajectory: a point has not one position per '
                                      'joint', throttle_duration_sec=2.0)
            return
        points = [[p.positions[index[j]] for j in self.joint_names] for p in msg.points]
        offsets = [p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec
                   for p in msg.points]
        now = time.monotonic()
        start = None
        stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        if stamp_ns:          # a stamped trajectory starts then (node clock -> monotonic)
            start = now + (stamp_ns - self.get_clock().now().nanoseconds) * 1e-9
        try:
            with self.lock:       # not interleaved with an episode reset (which clears it)
                self.trajectory.set(now, points, offsets, self.env.q.copy(), start)
        except ValueError as exc:
            self.get_logger().warning(f'ignored {exc}', throttle_duration_sec=2.0)
            return
        self._set_command(points[-1])

    def on_array(self, msg):
        self._set_command(list(msg.data))

    def _set_command(self, values):
        command = np.asarray(values, np.float64)
        if command.shape != (self.env.n_joints,) or not np.all(np.isfinite(command)):
            self.get_logger().warning(f'ignored invalid command {values}',
                                      throttle_duration_sec=2.0)
            return
        self.command = command
        self.episode_commands += 1
        self.command_event.set()

    # ---- episodes -----------------------------------------------------------------------------
    def publish_joints(self, stamp=None):
        stamp = stamp or self.get_clock().now().to_msg()
        joints = JointState(name=list(self.joint_names), position=[float(x) for x in self.env.q],
                            velocity=[], effort=[])
        joints.header.stamp = stamp
        self.joints.publish(joints)

    def publish_frame(self, frame, stamp=None):
        image = Image(**rgb_to_msg_fields(frame))
        image.header.stamp = stamp or self.get_clock().now().to_msg()
        image.header.frame_id = 'sim_camera'
        episode = self.env.episode
        truth = FrameTruth(episode=self.episode_index, step=self.env.t,
                           kind=episode.frame_kind(self.env.t),
                           cued_target=episode.cued_target(self.env.t))
        truth.header = image.header
        self.truth.publish(truth)
        self.camera.publish(image)

    def publish_observation(self, frame):
        stamp = self.get_clock().now().to_msg()
        self.publish_joints(stamp)
        self.publish_frame(frame, stamp)

    def _call(self, client, request, timeout=10.0):
        """The service's response, or None (not answered within ``timeout`` / stopping)."""
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        while not done.wait(0.05):
            timeout -= 0.05
            if self.stop.is_set() or timeout <= 0:
                return None
        return future.result()

    def wait_for_policy(self):
        """Block until the policy reports the lifecycle state active (no deadline: an episode
        the policy does not see is not run); False when the node is stopping."""
        if self.state_client is None:
            return True
        told = False
        while not self.stop.is_set():
            if self.state_client.service_is_ready():
                reply = self._call(self.state_client, GetState.Request(), timeout=2.0)
                if reply is not None and \
                        reply.current_state.id == LifecycleState.PRIMARY_STATE_ACTIVE:
                    if told:
                        self.get_logger().info('the policy is active: starting')
                    return True
            if not told:
                told = True
                self.get_logger().info(f"waiting for {self.p['policy']} to be active")
            self.stop.wait(0.2)
        return False

    def reset_memory(self):
        if self.reset_client is None:
            return
        deadline = time.monotonic() + 30.0
        while not self.reset_client.service_is_ready():
            if self.stop.wait(0.05):
                return
            if time.monotonic() > deadline:
                self.get_logger().warning(f"{self.p['policy']}/reset_memory not available: memory "
                                          f'not reset for this episode')
                return
        self._call(self.reset_client, Trigger.Request())

    def run(self):
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - a shutdown mid-publish ends the thread quietly
            if not self.stop.is_set() and rclpy.ok():
                raise RuntimeError(f'sim episode thread failed: {exc}') from exc
        finally:
            self.finished.set()

    def _run(self):
        if self.stop.wait(self.p['start_delay']):
            return
        index = 0
        while not self.stop.is_set() and (self.p['episodes'] == 0 or
                                          index < self.p['episodes']):
            seed = self.p['seed'] + index
            self.episode_index = index
            if not self.wait_for_policy():
                return
            self.reset_memory()
            if self.stop.is_set():
                return
            with self.lock:
                frame = self.env.reset(seed)
                self.command = None
                self.trajectory.clear()
                self.episode_commands = 0
            self.publish_event(EpisodeEvent.START, index, seed)
            finished = (self._lockstep_episode(frame) if self.p['lockstep']
                        else self._realtime_episode(frame))
            if not finished:
                return
            self.publish_event(EpisodeEvent.END, index, seed, bool(self.env.success))
            self.publish_result(index, seed)
            index += 1
        if self.disarm_client is not None and self.disarm_client.service_is_ready():
            self._call(self.disarm_client, Trigger.Request(), timeout=2.0)   # the run is over
        if not self.stop.is_set():
            self.flush_events()

    def _lockstep_episode(self, frame):
        while not self.stop.is_set():
            self.command_event.clear()
            self.publish_observation(frame)
            self.command_event.wait(self.p['command_timeout'] if self.env.t > 0
                                    else self.p['command_timeout'] * 5)
            frame, done = self.env.step(self.command)
            if done:
                return True
        return False

    def _realtime_episode(self, frame):
        """Physics, joint states and frames on their own clocks (aura_ros.sim.realtime)."""
        if self.p['command_type'] == 'joint_trajectory':
            def command():
                return self.trajectory.sample(time.monotonic())
        else:
            def command():
                return self.command
        return self.realtime.run(frame, command,
                                 lambda frame, _: self.publish_frame(frame),
                                 lambda _q, _t: self.publish_joints(), self.stop)

    def publish_event(self, event, index, seed, success=False):
        msg = EpisodeEvent(event=event, episode=index, seed=seed, success=success)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.events.publish(msg)

    def flush_events(self, timeout_s=3.0):
        """Wait (at most ``timeout_s``) until the subscribers have the episode events: the node
        exits right after the last episode, and a reliable sample still in flight when its
        writer goes is lost (a recorder or the recording helper would miss the last END). A
        subscriber that went away never acknowledges: said once, at info level."""
        if not self.events.wait_for_all_acked(Duration(seconds=timeout_s)):
            self.get_logger().info(f'{self.events.topic_name}: not every subscriber '
                                   f'acknowledged the last events within {timeout_s} s')

    def publish_result(self, index, seed):
        env = self.env
        msg = EpisodeResult(episode=index, seed=seed, variant=self.p['variant'],
                            success=bool(env.success), steps=env.t,
                            target=env.episode.target, reached=env.reached,
                            commands=self.episode_commands)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.results.publish(msg)
        self.episode_results.append(msg)
        if not msg.commands:
            self.get_logger().warning(f'episode {index} seed {seed}: no command received: not '
                                      f'a policy result')
            return
        self.get_logger().info(f"episode {index} seed {seed}: "
                               f"{'SUCCESS' if env.success else 'failure'} in {env.t} steps "
                               f'(target pad {env.episode.target}, reached {env.reached})')


def spin(node):
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    node.thread.start()
    while rclpy.ok() and not node.finished.is_set():
        executor.spin_once(timeout_sec=0.1)
    driven = [r for r in node.episode_results if r.commands]
    unscored = len(node.episode_results) - len(driven)
    node.get_logger().info(f'{sum(r.success for r in driven)}/{len(driven)} episodes succeeded'
                           + (f' ({unscored} without a policy command, not counted)'
                              if unscored else ''))


def close(node):
    """Stop the episode thread before the node goes (SIGINT: within a second)."""
    node.stop.set()
    node.command_event.set()
    if node.thread.is_alive():
        node.thread.join(timeout=1.0)
    if hasattr(node.env, 'close'):      # the MuJoCo renderer's GL context
        node.env.close()


def main(args=None):
    return run_node(SimArmNode, spin, args, close=close)


if __name__ == '__main__':
    sys.exit(main())
