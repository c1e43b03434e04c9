"""sim_teleop: the scripted expert as a teleop device for sim_arm_node (demonstrations to record).

A human operator who saw the cue: for every camera frame it publishes one demonstrated joint
position command on ``command_topic`` (JointTrajectory, Float64MultiArray or JointState, by
``command_type``), which the sim follows (set the sim's ``command_topic`` to it). The command is
the expert's step from the measured joint positions plus operator noise (``noise``, as in DART:
demonstrations that also cover states off the expert's path), so the recorded label is what was
executed, as with a real teleop device.

It knows the task the way an operator does: sim_arm_node's START event (sim/episode_events)
gives the episode's seed, from which a replica of the episode (pads, target, go time) is built;
frames since START give the task clock. Frames and joint states are paired by stamp (a frame is
answered once a joint state at least as new has arrived); a frame that arrives before its
episode's START waits for it (the events are latched: a START that goes out while the
connection is still being set up is delivered when it completes). Start it before the sim: a
teleop that joins mid-run replays the latched events. Works with the sim in lockstep and in
real time; record in real time, as on a robot (in lockstep, frames follow each other as fast
as commands answer them, a few ms apart, too close to tell which command answered which).
"""
import sys
import threading

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from aura_ros.msg import EpisodeEvent
from aura_ros.nodes.common import EVENTS_QOS, declare_params, run_node
from aura_ros.params import SIM_TELEOP_PARAMS
from aura_ros.sim.arm import ArmTaskConfig
from aura_ros.sim.engines import make_env

MESSAGES = {'joint_trajectory': JointTrajectory, 'float64_multi_array': Float64MultiArray,
            'joint_state': JointState}


def _ns(stamp):
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class SimTeleop(Node):
    def __init__(self, **kwargs):
        super().__init__('sim_teleop', **kwargs)
        self.p = declare_params(self, SIM_TELEOP_PARAMS)
        self.replica = make_env(self.p['engine'], ArmTaskConfig(variant=self.p['variant'],
                                                                 image_size=16))
        # Warm-up before subscribing: MuJoCo's first reset renders (an EGL context: 0.4 s on
        # an idle machine, over a second on a loaded one). Paid in the first START's callback,
        # it left the first frames of a real-time episode unanswered and the episode failed.
        self.replica.reset(int(self.p['seed']))
        self.joint_names = list(self.p['joint_names']) or list(self.replica.joint_names)
        self.rng = np.random.default_rng(self.p['seed'])
        self.publisher = self.create_publisher(MESSAGES[self.p['command_type']],
                                               self.p['command_topic'], 10)
        self.create_subscription(EpisodeEvent, self.p['events_topic'], self.on_event,
                                 EVENTS_QOS)
        self.create_subscription(JointState, self.p['joint_states_topic'], self.on_joints, 10)
        self.create_subscription(Image, self.p['camera_topic'], self.on_frame, 10)
        self.episode = None      # (start stamp ns, seed) of the running episode
        self.t = 0               # frames answered in it (the task clock)
        self.joints = None       # (stamp ns, q) newest joint state
        self.pending = None      # stamp ns of a frame waiting for its joint state or START
        self.ended = 0
        self.commands = 0
        self.finished = threading.Event()
        self.get_logger().info(f"demonstrating on {self.p['command_topic']} "
                               f"({self.p['command_type']}, noise {self.p['noise']})")

    def on_event(self, msg):
        if msg.event == EpisodeEvent.START:
            self.replica.reset(int(msg.seed))
            self.episode, self.t = (_ns(msg.header.stamp), int(msg.seed)), 0
            if self.pending is not None and self.pending < self.episode[0]:
                self.pending = None           # a frame of an earlier episode: nothing to do
            self.try_answer()
        elif msg.event == EpisodeEvent.END:
            self.episode, self.pending = None, None
            self.ended += 1
            if self.p['episodes'] and self.ended >= self.p['episodes']:
                self.finished.set()

    def on_joints(self, msg):
        if len(msg.position) != len(self.joint_names):
            return
        self.joints = (_ns(msg.header.stamp), np.asarray(msg.position, np.float64))
        self.try_answer()

    def on_frame(self, msg):
        self.pending = _ns(msg.header.stamp)
        self.try_answer()

    def try_answer(self):
        """Answer the pending frame once its episode and a joint state as new are known."""
        if (self.pending is None or self.episode is None or self.joints is None
                or self.pending < self.episode[0] or self.joints[0] < self.pending):
            return
        self.pending = None
        q = self.joints[1]
        self.replica.t, self.replica.q = self.t, q.copy()
        self.t += 1
        speed = self.replica.config.max_joint_speed
        command = q + self.replica.expert_action() + (
            self.p['noise'] * speed * self.rng.standard_normal(len(q)))
        self.publish(command)

    def publish(self, command):
        values = [float(x) for x in command]
        kind = self.p['command_type']
        if kind == 'joint_trajectory':
            msg = JointTrajectory(joint_names=list(self.joint_names),
                                  points=[JointTrajectoryPoint(positions=values)])
        elif kind == 'joint_state':
            msg = JointState(name=list(self.joint_names), position=values)
        else:
            msg = Float64MultiArray(data=values)
        if kind != 'float64_multi_array':
            msg.header.stamp = self.get_clock().now().to_msg()
        self.publisher.publish(msg)
        self.commands += 1


def spin(node):
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    while rclpy.ok() and not node.finished.is_set():
        executor.spin_once(timeout_sec=0.1)
    node.get_logger().info(f'{node.ended} episodes demonstrated, {node.commands} commands')


def main(args=None):
    return run_node(SimTeleop, spin, args)


if __name__ == '__main__':
    sys.exit(main())
