"""The message types of rosbag2 files, for rosbags (no rclpy, no torch): one typestore that
the recorders write with and the bag report and training read with.

``typestore(msgtypes)``: ROS 2 Kilted's standard types, aura_ros's own messages (from this
package's msg/ folder, in the source tree or installed under share/), and any other
``pkg/msg/Type`` of ``msgtypes`` read from the .msg file the ament index points at.
"""
import sys
from pathlib import Path


def _aura_msg_dir():
    for folder in (Path(__file__).resolve().parents[1] / 'msg',
                   Path(sys.prefix) / 'share' / 'aura_ros' / 'msg'):
        if folder.is_dir():
            return folder
    return None


def typestore(msgtypes=()):
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    folder = _aura_msg_dir()
    for path in sorted(folder.glob('*.msg')) if folder else ():
        store.register(get_types_from_msg(path.read_text(), f'aura_ros/msg/{path.stem}'))
    for msgtype in msgtypes:
        if msgtype not in store.fielddefs:
            from aura_ros.paths import package_share
            package, _, name = msgtype.split('/')
            path = Path(package_share(package)) / 'msg' / f'{name}.msg'
            store.register(get_types_from_msg(path.read_text(), msgtype))
    return store
