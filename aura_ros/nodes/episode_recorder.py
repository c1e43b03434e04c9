"""episode_recorder: record demonstration episodes on the robot into one rosbag2 directory.

What it records (``topics``, relative names): the camera (or ``aura/frames``), ``joint_states``,
the demonstrated command stream of a teleop device or leader arm (JointTrajectory,
Float64MultiArray or JointState), the instruction, and the episode events. It is gate_recorder
(same writer: MCAP by default, flushed every ``flush_period`` s, a hard kill loses at most
that) with episode boundaries:

    ~/start_episode   std_srvs/Trigger   an episode begins (refused while one runs)
    ~/end_episode     std_srvs/SetBool   it ends; ``data`` is the outcome (true = success)

Each call writes an aura_ros/EpisodeEvent (stamped with this node's clock, the instruction in
START) into the bag on ``aura/episode_events`` and publishes it there. Bags from a plain
``ros2 bag record`` work too when something else publishes EpisodeEvents (sim_arm_node does,
on ``sim/episode_events``); ``python -m aura_ros.train episodes`` finds events by type. The
count of episodes and successes logged at the end covers every EpisodeEvent END recorded, this
node's and those of any recorded events topic (a sim's).
"""
import sys

from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from aura_ros import topics
from aura_ros.bag_types import typestore
from aura_ros.msg import EpisodeEvent
from aura_ros.nodes.common import EVENTS_QOS, run_node
from aura_ros.nodes.gate_recorder import GateRecorder, spin
from aura_ros.params import EPISODE_RECORDER_PARAMS

EVENT_TYPE = 'aura_ros/msg/EpisodeEvent'


class EpisodeRecorder(GateRecorder):
    bag_prefix = 'aura_episodes'

    def __init__(self, **kwargs):
        # its own events are written directly (never lost to discovery), not subscribed as well
        super().__init__('episode_recorder', EPISODE_RECORDER_PARAMS,
                         skip=(topics.EPISODE_EVENTS,), **kwargs)
        self.events_topic = self.resolve_topic_name(topics.EPISODE_EVENTS)
        self.event_connection = self.writer.add_connection(
            self.events_topic, EVENT_TYPE, typestore=typestore([EVENT_TYPE]))
        self.counts[self.events_topic] = 0
        self.events = self.create_publisher(EpisodeEvent, topics.EPISODE_EVENTS, EVENTS_QOS)
        self.create_subscription(String, topics.INSTRUCTION, self.on_instruction, 10)
        self.create_service(Trigger, '~/start_episode', self.on_start)
        self.create_service(SetBool, '~/end_episode', self.on_end)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self.episode = 0            # index of the next (or running) episode
        self.running = False
        self.outcomes = []          # every END recorded: this node's and other publishers'

    def _apply_parameters(self, params):
        for param in params:
            if param.name in self.p:
                self.p[param.name] = param.value

    def recorded(self, topic, data):
        """An EpisodeEvent END of another publisher (a sim) counts as a recorded episode."""
        if self.subscribed.get(topic, (None, None, None))[2] is not EpisodeEvent:
            return
        event = deserialize_message(data, EpisodeEvent)
        if event.event == EpisodeEvent.END:
            self.outcomes.append(bool(event.success))

    def on_instruction(self, msg):
        self.p['instruction'] = msg.data

    def write_event(self, kind, success=False):
        msg = EpisodeEvent(event=kind, episode=self.episode, success=success,
                           instruction=self.p['instruction'] if kind == EpisodeEvent.START
                           else '')
        msg.header.stamp = self.get_clock().now().to_msg()
        self.writer.write(self.event_connection, self.get_clock().now().nanoseconds,
                          serialize_message(msg))
        self.counts[self.events_topic] += 1
        self.dirty = True
        self.flush()                      # a boundary is worth a flush of its own
        self.events.publish(msg)

    def on_start(self, request, response):
        if self.closed:
            response.success, response.message = False, 'the recorder is closing'
        elif self.running:
            response.success = False
            response.message = f'episode {self.episode} is running: end it first'
        else:
            self.running = True
            self.write_event(EpisodeEvent.START)
            response.success, response.message = True, f'episode {self.episode} started'
            self.get_logger().info(response.message)
        return response

    def on_end(self, request, response):
        if not self.running:
            response.success, response.message = False, 'no episode is running'
            return response
        self.write_event(EpisodeEvent.END, bool(request.data))
        self.outcomes.append(bool(request.data))
        response.success = True
        response.message = (f"episode {self.episode} ended: "
                            f"{'success' if request.data else 'failure'}")
        self.get_logger().info(response.message)
        self.running = False
        self.episode += 1
        return response

    def close(self):
        if not self.closed:
            if self.running:
                self.get_logger().warning(f'episode {self.episode} was not ended: it stays in '
                                          f'the bag without an outcome')
            self.get_logger().info(f'{len(self.outcomes)} episodes, {sum(self.outcomes)} '
                                   f'successful')
        super().close()


def main(args=None):
    from rclpy.signals import SignalHandlerOptions
    return run_node(EpisodeRecorder, spin, args, close=EpisodeRecorder.close, exit_process=True,
                    signal_handler_options=SignalHandlerOptions.NO)


if __name__ == '__main__':
    sys.exit(main())
