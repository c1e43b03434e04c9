"""Demonstration bags written with rosbags (no ROS processes): camera frames, joint states,
demonstrated commands, episode events and FrameTruth, as episode_recorder records them. Shared
by the tests of train episodes and of the learning-curve benchmark."""
import numpy as np

JOINTS = ['joint_1', 'joint_2', 'joint_3']
TYPES = {'image': 'sensor_msgs/msg/Image', 'joints': 'sensor_msgs/msg/JointState',
         'joint_trajectory': 'trajectory_msgs/msg/JointTrajectory',
         'float64_multi_array': 'std_msgs/msg/Float64MultiArray',
         'joint_state': 'sensor_msgs/msg/JointState', 'event': 'aura_ros/msg/EpisodeEvent',
         'truth': 'aura_ros/msg/FrameTruth'}


KINDS = ['pre_cue'] * 3 + ['cue_onset'] + ['cue_continued'] * 2 + ['delay'] * 3 + ['go'] * 3


def stamp(t):
    from builtin_interfaces.msg import Time
    return Time(sec=int(t), nanosec=int(round((t - int(t)) * 1e9)))


def write_bag(path, episodes=2, frames=12, demo_type='joint_trajectory', storage='mcap',
              demo_shift=0.0, joints=3, demo_width=3, events=True, empty_episode=False,
              seed=0, image=(40, 48), corrections=0, demos=True, kinds=None):
    """Episodes at 30 fps with jittered stamps: joint states at 100 Hz, one demonstrated
    command ~3 ms after each frame (the target = q + a known step), START/END events;
    ``kinds`` (one per frame of an episode): a FrameTruth per frame, the frame's stamp."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float64MultiArray
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from aura_ros.bag_types import typestore
    from aura_ros.imaging import rgb_to_msg_fields
    from aura_ros.msg import EpisodeEvent, FrameTruth
    rng = np.random.default_rng(seed)
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    msgs = []     # (log time s, topic key, message)
    t = 100.0
    for e in range(episodes):
        n = 0 if (empty_episode and e == 1) else frames
        if events:
            msgs.append((t, 'event', EpisodeEvent(header=_h(t), event=0, episode=e, seed=e)))
        q0 = rng.uniform(-0.5, 0.5, joints)
        for k in range(0 if n else 6):     # joint states keep coming in an empty episode
            msgs.append((t + k / 100, 'joints', JointState(header=_h(t + k / 100),
                                                           name=JOINTS[:joints],
                                                           position=q0.tolist())))
        for k in range(n):
            tf = t + 0.01 + k / 30 + rng.uniform(-0.003, 0.003)
            rgb = rng.integers(0, 256, (*image, 3), dtype=np.uint8)
            msgs.append((tf, 'image', Image(header=_h(tf), **rgb_to_msg_fields(rgb))))
            if kinds is not None:
                msgs.append((tf + 0.0005, 'truth', FrameTruth(header=_h(tf), episode=e, step=k,
                                                              kind=kinds[k], cued_target=-1)))
            for j in range(4):
                tj = tf - 0.01 + j / 100
                q = q0 + 0.01 * (tj - t)
                msgs.append((tj, 'joints', JointState(header=_h(tj), name=JOINTS[:joints],
                                                      position=q.tolist())))
            q = q0 + 0.01 * (tf - t)
            target = (q + np.array([0.1, -0.2, 0.3])[:joints]).tolist() + [0.0] * (
                demo_width - joints)
            td = tf + 0.003 + demo_shift
            if demo_type == 'joint_trajectory':
                demo = JointTrajectory(header=_h(td), joint_names=(JOINTS + ['x'])[:demo_width],
                                       points=[JointTrajectoryPoint(positions=target)])
            elif demo_type == 'joint_state':
                demo = JointState(header=_h(td), name=(JOINTS + ['x'])[:demo_width],
                                  position=target)
            else:
                demo = Float64MultiArray(data=target)
            if demos:
                msgs.append((td, 'demo', demo))
            if k < corrections:        # a person takes over: a different target
                msgs.append((td + 0.001, 'fix', JointState(header=_h(td + 0.001), name=JOINTS,
                                                           position=(q + 0.5).tolist())))
        t += 0.02 + n / 30
        if events:
            msgs.append((t, 'event', EpisodeEvent(header=_h(t), event=1, episode=e, seed=e,
                                                  success=e % 2 == 0)))
        t += 0.5
    topics = {'image': '/camera/image_raw', 'joints': '/joint_states',
              'demo': '/teleop/joint_commands', 'event': '/aura/episode_events'}
    if corrections:
        topics['fix'] = '/teleop/corrections'
    if kinds is not None:
        topics['truth'] = '/sim/frame_truth'
    types = dict(TYPES, demo=TYPES[demo_type], fix=TYPES['joints'])
    store = typestore(set(types.values()))
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {key: writer.add_connection(topic, types[key], typestore=store)
                 for key, topic in topics.items() if key != 'event' or events}
        for t_log, key, msg in sorted(msgs, key=lambda m: m[0]):
            writer.write(conns[key], int(t_log * 1e9),
                         store.serialize_cdr(to_rosbags(store, msg), types[key]))
    return path


_NUMPY = {'double': np.float64, 'float': np.float32, 'uint8': np.uint8, 'int8': np.int8,
          'octet': np.uint8, 'int32': np.int32, 'uint32': np.uint32}


def to_rosbags(store, msg):
    """An rclpy message as the rosbags type (rclpy's serialize_message pads some messages,
    e.g. a trailing empty float64 sequence, which rosbags' strict reader refuses; bags
    recorded from DDS do not carry that padding)."""
    typename = type(msg).__module__.split('.')[0] + '/msg/' + type(msg).__name__
    values = {}
    for name, kind in msg.get_fields_and_field_types().items():
        value = getattr(msg, name)
        inner = kind[len('sequence<'):-1] if kind.startswith('sequence<') else kind.split('[')[0]
        if '/' in inner:
            values[name] = ([to_rosbags(store, v) for v in value] if inner != kind
                            else to_rosbags(store, value))
        elif inner in ('uint8', 'octet') and inner != kind:
            values[name] = np.frombuffer(bytes(value), np.uint8)
        elif inner in _NUMPY and inner != kind:
            values[name] = np.asarray(value, dtype=_NUMPY[inner])
        else:
            values[name] = list(value) if inner != kind else value
    return store.types[typename](**values)


def _h(t):
    from std_msgs.msg import Header
    return Header(stamp=stamp(t), frame_id='f')
