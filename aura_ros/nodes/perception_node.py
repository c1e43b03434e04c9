"""perception_node: camera images -> backbone-ready RGB frames on /aura/frames.

Subscribes to the camera with sensor-data QoS (best effort, depth 1), converts with cv_bridge
when it is importable (else aura_ros.imaging, same semantics), crops to a central square and
resizes to ``backbone.image_size``, keeps the camera's header (stamp, frame_id), and publishes
rgb8 frames. Malformed frames are dropped with one log line and counted; frames older than
``max_frame_age`` are dropped as stale. Counters go to /diagnostics.
"""
import sys

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from aura_ros import topics
from aura_ros.control.rates import RateMeter
from aura_ros.imaging import (
    ImageFormatError,
    check_layout,
    crop_resize,
    image_to_rgb,
    rgb_to_msg_fields,
)
from aura_ros.nodes.common import (
    ERROR,
    OK,
    WARN,
    ThrottledLog,
    declare_params,
    diagnostic_array,
    run_node,
    stamp_to_sec,
)
from aura_ros.params import PERCEPTION_PARAMS

try:  # a real ROS 2 cv_bridge when installed (apt); the PyPI `cv-bridge` is ROS 1 and unusable
    from cv_bridge import CvBridge
    _BRIDGE = CvBridge()
except Exception:  # noqa: BLE001 - any import failure means: use our converter
    _BRIDGE = None

FRAMES_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


class PerceptionNode(Node):
    def __init__(self, **kwargs):
        super().__init__('perception_node', **kwargs)
        self.p = declare_params(self, PERCEPTION_PARAMS)
        self.counts = dict(received=0, published=0, malformed=0, stale=0)
        self.last_error = ''
        self.log = ThrottledLog(self.get_logger())
        self.rate = RateMeter()
        self.publisher = self.create_publisher(Image, self.p['output_topic'], FRAMES_QOS)
        self.create_subscription(Image, self.p['camera_topic'], self.on_image,
                                 qos_profile_sensor_data)
        from diagnostic_msgs.msg import DiagnosticArray
        self.diagnostics = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        self.create_timer(1.0 / self.p['diagnostics_rate'], self.publish_diagnostics)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self.get_logger().info(
            f"converting {self.p['camera_topic']} -> {self.p['output_topic']} at "
            f"{self.p['backbone.image_size']}px ({'cv_bridge' if _BRIDGE else 'aura_ros.imaging'})")

    def _apply_parameters(self, params):
        """Validated changes (``declare_params`` refused the invalid ones) apply from the next
        image: the hot path reads ``self.p``, never ``get_parameter`` per frame."""
        for param in params:
            if param.name in self.p:
                self.p[param.name] = param.value

    def convert(self, msg):
        fields = (msg.width, msg.height, msg.encoding, msg.step, msg.data)
        if _BRIDGE is not None:  # same checks and messages, then cv_bridge converts
            check_layout(*fields, max_bytes=self.p['max_image_bytes'])
            return _BRIDGE.imgmsg_to_cv2(msg, 'rgb8')
        return image_to_rgb(*fields, msg.is_bigendian, self.p['max_image_bytes'])

    def on_image(self, msg):
        self.counts['received'] += 1
        max_age = self.p['max_frame_age']
        if max_age > 0:
            age = self.get_clock().now().nanoseconds * 1e-9 - stamp_to_sec(msg.header.stamp)
            if age > max_age:
                self.counts['stale'] += 1
                return
        try:
            rgb = self.convert(msg)
            frame = crop_resize(rgb, self.p['backbone.image_size'], self.p['crop'])
        except (ImageFormatError, ValueError, TypeError) as exc:
            self.counts['malformed'] += 1
            self.last_error = str(exc)
            self.log('warning', f'dropped malformed frame: {exc}')
            return
        out = Image(header=msg.header, **rgb_to_msg_fields(frame))
        self.publisher.publish(out)
        self.counts['published'] += 1
        self.rate.tick()

    def publish_diagnostics(self):
        rate = self.rate.rate()
        level, message = OK, 'streaming'
        if self.counts['received'] == 0:
            level, message = WARN, f"no images on {self.p['camera_topic']} yet"
        elif rate == 0.0:
            level, message = ERROR, 'camera stopped'
        elif self.counts['malformed']:
            level, message = WARN, f"malformed frames dropped (last: {self.last_error})"
        self.diagnostics.publish(diagnostic_array(
            self, 'aura_ros: perception', level, message,
            dict(self.counts, frame_rate_hz=f'{rate:.1f}', camera_topic=self.p['camera_topic'],
                 converter='cv_bridge' if _BRIDGE else 'aura_ros.imaging')))


def main(args=None):
    return run_node(PerceptionNode, rclpy.spin, args, exit_process=True)


if __name__ == '__main__':
    sys.exit(main())
