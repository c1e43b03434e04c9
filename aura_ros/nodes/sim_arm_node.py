"""sim_arm_node: the simulated camera arm (aura_ros.sim) as a ROS 2 robot.

Publishes /camera/image_raw (rgb8) and /joint_states, follows joint position commands
(trajectory_msgs/JointTrajectory or std_msgs/Float64MultiArray, by ``command_type``), runs
episodes back to back and publishes each result on /sim/episode_result (and logs it).

``lockstep`` (default): publish a frame, wait for the command that answers it (or
``command_timeout``), step. Results then do not depend on how fast the policy runs. Otherwise
the sim steps at ``rate`` Hz with whatever command arrived last, like a real camera.
At each episode start the sim calls ``reset_service`` (std_srvs/Trigger, the policy node's
~/reset_memory) so that memory does not leak across episodes.
"""
import sys
import threading
import time

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from aura_ros import topics
from aura_ros.imaging import rgb_to_msg_fields
from aura_ros.msg import EpisodeResult
from aura_ros.nodes.common import run_node
from aura_ros.sim.arm import VARIANTS, ArmEnv, ArmTaskConfig

JOINTS = ['joint_1', 'joint_2', 'joint_3']


class SimArmNode(Node):
    def __init__(self, **kwargs):
        super().__init__('sim_arm_node', **kwargs)
        params = dict(variant=('memory', f'task variant: {", ".join(VARIANTS)}'),
                      image_size=(64, 'camera image side (pixels)'),
                      episodes=(0, 'episodes to run, then exit (0 = run forever)'),
                      seed=(0, 'seed of the first episode; episode i uses seed + i'),
                      lockstep=(True, 'wait for the answering command before each step'),
                      rate=(30.0, 'frames per second when not in lockstep'),
                      command_timeout=(2.0, 'lockstep: step without a command after this (s)'),
                      command_type=('joint_trajectory', 'joint_trajectory or '
                                    'float64_multi_array'),
                      command_topic=(topics.JOINT_COMMANDS, 'joint position commands'),
                      camera_topic=(topics.CAMERA, 'camera output'),
                      joint_states_topic=(topics.JOINT_STATES, 'joint state output'),
                      reset_service=(topics.POLICY_RESET, 'Trigger service called at '
                                     'each episode start ("" = none)'),
                      start_delay=(0.0, 'seconds to wait before the first episode'))
        self.p = {name: self.declare_parameter(name, default, ParameterDescriptor(
            description=desc, read_only=True)).value for name, (default, desc) in params.items()}
        if self.p['command_type'] not in ('joint_trajectory', 'float64_multi_array'):
            raise ValueError(f"command_type must be joint_trajectory or float64_multi_array, "
                             f"got {self.p['command_type']!r}")
        self.env = ArmEnv(ArmTaskConfig(variant=self.p['variant'],
                                        image_size=self.p['image_size']))
        self.camera = self.create_publisher(Image, self.p['camera_topic'], 10)
        self.joints = self.create_publisher(JointState, self.p['joint_states_topic'], 10)
        self.results = self.create_publisher(EpisodeResult, topics.EPISODE_RESULT, 10)
        group = MutuallyExclusiveCallbackGroup()
        if self.p['command_type'] == 'joint_trajectory':
            self.create_subscription(JointTrajectory, self.p['command_topic'], self.on_trajectory,
                                     10, callback_group=group)
        else:
            self.create_subscription(Float64MultiArray, self.p['command_topic'],
                                     self.on_array, 10, callback_group=group)
        self.reset_client = (self.create_client(Trigger, self.p['reset_service'])
                             if self.p['reset_service'] else None)
        self.command = None
        self.command_event = threading.Event()
        self.finished = threading.Event()
        self.episode_results = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    # ---- commands ----------------------------------------------------------------------------
    def on_trajectory(self, msg):
        if not msg.points:
            return
        index = {n: i for i, n in enumerate(msg.joint_names)}
        if any(j not in index for j in JOINTS):
            self.get_logger().warning(f'ignored trajectory for joints {msg.joint_names}',
                                      throttle_duration_sec=2.0)
            return
        positions = msg.points[-1].positions
        self._set_command([positions[index[j]] for j in JOINTS])

    def on_array(self, msg):
        self._set_command(list(msg.data))

    def _set_command(self, values):
        command = np.asarray(values, np.float64)
        if command.shape != (3,) or not np.all(np.isfinite(command)):
            self.get_logger().warning(f'ignored invalid command {values}',
                                      throttle_duration_sec=2.0)
            return
        self.command = command
        self.command_event.set()

    # ---- episodes -----------------------------------------------------------------------------
    def publish_observation(self, frame):
        stamp = self.get_clock().now().to_msg()
        joints = JointState(name=list(JOINTS), position=[float(x) for x in self.env.q],
                            velocity=[], effort=[])
        joints.header.stamp = stamp
        self.joints.publish(joints)
        image = Image(**rgb_to_msg_fields(frame))
        image.header.stamp = stamp
        image.header.frame_id = 'sim_camera'
        self.camera.publish(image)

    def reset_memory(self):
        if self.reset_client is None:
            return
        if not self.reset_client.wait_for_service(timeout_sec=30.0):
            self.get_logger().warning(f"{self.p['reset_service']} not available: memory not "
                                      f'reset for this episode')
            return
        future = self.reset_client.call_async(Trigger.Request())
        deadline = time.monotonic() + 10.0
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.005)

    def run(self):
        time.sleep(self.p['start_delay'])
        index = 0
        while rclpy.ok() and (self.p['episodes'] == 0 or index < self.p['episodes']):
            seed = self.p['seed'] + index
            self.reset_memory()
            frame = self.env.reset(seed)
            self.command = None
            period = 1.0 / self.p['rate']
            while True:
                self.command_event.clear()
                self.publish_observation(frame)
                if self.p['lockstep']:
                    self.command_event.wait(self.p['command_timeout'] if self.env.t > 0
                                            else self.p['command_timeout'] * 5)
                else:
                    time.sleep(period)
                frame, done = self.env.step(self.command)
                if done:
                    break
            self.publish_result(index, seed)
            index += 1
        self.finished.set()

    def publish_result(self, index, seed):
        env = self.env
        msg = EpisodeResult(episode=index, seed=seed, variant=self.p['variant'],
                            success=bool(env.success), steps=env.t,
                            target=env.episode.target, reached=env.reached)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.results.publish(msg)
        self.episode_results.append(msg)
        self.get_logger().info(f"episode {index} seed {seed}: "
                               f"{'SUCCESS' if env.success else 'failure'} in {env.t} steps "
                               f'(target pad {env.episode.target}, reached {env.reached})')


def spin(node):
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    node.thread.start()
    while rclpy.ok() and not node.finished.is_set():
        executor.spin_once(timeout_sec=0.1)
    successes = sum(r.success for r in node.episode_results)
    node.get_logger().info(f'{successes}/{len(node.episode_results)} episodes succeeded')


def main(args=None):
    return run_node(SimArmNode, spin, args)


if __name__ == '__main__':
    sys.exit(main())
