"""Recorded bags -> episodes of time-stamped streams (no ROS, no torch).

Reads rosbag2 directories (MCAP or sqlite3, from ``episode_recorder`` or a plain
``ros2 bag record``) with the ``rosbags`` library and the bag's own message definitions
(aura_ros's for its messages when the bag has none). Four streams, topics by name (relative
names match their absolute form):

    frames          sensor_msgs/Image                       the camera or aura/frames
    joint states    sensor_msgs/JointState                  the follower arm's positions
    demonstrations  trajectory_msgs/JointTrajectory         (last point), std_msgs/
                    Float64MultiArray or JointState          of the teleop / leader arm
    corrections     the same types (optional, DAgger)       the policy drove (its commands
                                                            are the demonstrations) and a
                                                            person corrected it at times
    events          aura_ros/EpisodeEvent                   found by type; START/END split the
                                                            bag into episodes
    frame truth     aura_ros/FrameTruth (optional)          found by type: a simulated arm's
                                                            kind of each frame (cue_onset, ...)
                                                            by the frame's header stamp

Times: a message's header stamp (``stamps='header'``, where it has a non-zero one), else the
time the recorder logged it; ``stamps='receive'`` uses the log time everywhere (for devices
whose clocks disagree with the robot's). Joint states and demonstrations named by joint are
reordered into ``joint_names``.

Episodes: frames between a START and its END (inclusive); an END without START is ignored, a
START without END runs to the next START or the end of the bag (outcome unknown). A bag without
events is one episode. ``scan`` reads everything but the pixels; ``iter_frames`` decodes the
pixels frame by frame, so a long recording at full camera resolution never sits in memory.
"""
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aura_ros.bag_types import typestore
from aura_ros.imaging import image_to_rgb
from aura_ros.train.recordings import RecordingError

IMAGE = 'sensor_msgs/msg/Image'
JOINT_STATE = 'sensor_msgs/msg/JointState'
COMMAND_TYPES = ('trajectory_msgs/msg/JointTrajectory', 'std_msgs/msg/Float64MultiArray',
                 JOINT_STATE)
EVENT = 'aura_ros/msg/EpisodeEvent'
TRUTH = 'aura_ros/msg/FrameTruth'   # a simulated arm's per-frame ground truth (optional)
START, END = 0, 1


class BagError(RecordingError):
    """A bag that cannot be read (missing, damaged, truncated); the message says why."""


@dataclass
class StreamTopics:
    camera: str = 'camera/image_raw'
    joint_states: str = 'joint_states'
    commands: str = 'teleop/joint_commands'
    events: str = ''                 # '' = every aura_ros/EpisodeEvent topic in the bag
    corrections: str = ''            # DAgger: a correction topic that overrides the commands


@dataclass
class EpisodeSpan:
    index: int                       # episode number within the bag
    start: float                     # s
    end: float                       # s (inf: the bag ended first)
    success: bool | None = None      # None: no END event (outcome unknown)
    seed: int = 0
    instruction: str = ''


@dataclass
class BagScan:
    path: str
    key: str                          # identity of the bag's files (cache key)
    frame_times: np.ndarray           # (F,) s, in the order the frames were recorded
    joint_times: np.ndarray           # (N,)
    joint_positions: np.ndarray       # (N, J)
    demo_times: np.ndarray            # (M,)
    demo_positions: np.ndarray        # (M, J)
    correction_times: np.ndarray = None       # (C,) DAgger corrections (empty without)
    correction_positions: np.ndarray = None   # (C, J)
    episodes: list = field(default_factory=list)   # EpisodeSpan
    warnings: list = field(default_factory=list)
    frame_kinds: list = field(default_factory=list)  # (F,) FrameTruth kind per frame ('': none)

    def episode_frames(self, span, tolerance=0.0):
        """Indices of the frames of one episode (in recording order)."""
        t = self.frame_times
        return np.flatnonzero((t >= span.start - tolerance) & (t <= span.end + tolerance))


def find_bags(paths):
    """Bag directories (or bare .mcap/.db3 files) named by ``paths``: a bag itself, or a folder
    searched for bags (sorted). Raises BagError for a path that holds none."""
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise BagError(f'{path}: no such file or directory')
        if path.is_file() or _is_bag(path):
            found.append(path)
            continue
        inner = sorted({p.parent for p in path.rglob('*')
                        if p.suffix in ('.mcap', '.db3') or p.name == 'metadata.yaml'})
        if not inner:
            raise BagError(f'{path}: no rosbag2 directory (.mcap or .db3 files) inside')
        found += inner
    return found


def _is_bag(path):
    return (path / 'metadata.yaml').is_file() or any(path.glob('*.mcap')) or any(
        path.glob('*.db3'))


def bag_key(path):
    """Identity of a bag for the feature cache: its storage files' names, sizes and the hash
    of their first MiB (a re-recorded bag under the same name gets a new key)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(list(path.glob('*.mcap')) +
                                                 list(path.glob('*.db3')))
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(str(f.stat().st_size).encode())
        with open(f, 'rb') as fh:
            h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


STILL_RECORDING = ('no metadata.yaml yet: is its recorder still running? Stop it (Ctrl-C, or '
                   'kill -INT its process) and it closes the bag; a bag whose recorder was '
                   'killed hard needs `ros2 bag reindex` first')
DAMAGED = 'run with --on-bad-bag skip to train on the other bags'


def _open(path):
    from rosbags.highlevel import AnyReader
    if Path(path).is_dir() and not (Path(path) / 'metadata.yaml').is_file():
        raise BagError(f'{path}: {STILL_RECORDING}')
    try:
        reader = AnyReader([Path(path)], default_typestore=typestore())
        reader.open()
    except Exception as exc:  # noqa: BLE001 - any reader failure is a damaged bag to the user
        raise BagError(f'{path}: cannot read the bag ({type(exc).__name__}: {exc}); '
                       f'{DAMAGED}') from exc
    return reader


def _matches(topic, wanted):
    return topic == wanted or topic == '/' + wanted.lstrip('/')


def _time(msg, log_ns, stamps):
    header = getattr(msg, 'header', None)
    if stamps == 'header' and header is not None:
        ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        if ns:
            return ns * 1e-9
    return log_ns * 1e-9


def _named(names, values, joint_names, what):
    """Values ordered as ``joint_names`` (when both name lists are known)."""
    values = np.asarray(values, np.float64)
    if not joint_names or not names:
        return values
    index = {n: i for i, n in enumerate(names)}
    missing = [j for j in joint_names if j not in index]
    if missing:
        raise RecordingError(f'{what} name joints {list(names)}: {missing} missing')
    return values[[index[j] for j in joint_names]]


def _command_positions(msg, msgtype, joint_names):
    if msgtype == COMMAND_TYPES[0]:
        if not msg.points:
            return None
        return _named(msg.joint_names, msg.points[-1].positions, joint_names,
                      'demonstrated trajectories')
    if msgtype == COMMAND_TYPES[1]:
        return np.asarray(msg.data, np.float64)
    return _named(msg.name, msg.position, joint_names, 'demonstrated joint states')


def scan(path, topics=None, joint_names=None, stamps='header'):
    """Everything of one bag but the pixels (see the module); raises BagError / RecordingError
    with the reason (missing topic, wrong type, damaged file)."""
    topics = topics or StreamTopics()
    if stamps not in ('header', 'receive'):
        raise RecordingError(f"stamps must be 'header' or 'receive', got {stamps!r}")
    reader = _open(path)
    try:
        conns = {c.topic: c for c in reader.connections}
        listed = ', '.join(f'{t} [{c.msgtype}]' for t, c in sorted(conns.items())) or 'none'

        def find(wanted, types, what):
            for topic, conn in conns.items():
                if _matches(topic, wanted):
                    if conn.msgtype not in types:
                        raise RecordingError(f'{path}: {what} topic {topic} has type '
                                             f'{conn.msgtype}, expected {" or ".join(types)}')
                    return conn
            raise RecordingError(f'{path}: no {what} topic {wanted!r}; topics in the bag: '
                                 f'{listed}')

        camera = find(topics.camera, (IMAGE,), 'camera')
        joints = find(topics.joint_states, (JOINT_STATE,), 'joint state')
        demos = find(topics.commands, COMMAND_TYPES, 'demonstrated command')
        events = ([find(topics.events, (EVENT,), 'episode event')] if topics.events
                  else [c for c in conns.values() if c.msgtype == EVENT])
        fixes = (find(topics.corrections, COMMAND_TYPES, 'correction') if topics.corrections
                 else None)
        frames, jt, jq, dt, dq, ev, ct, cq = [], [], [], [], [], [], [], []
        frame_stamps, truth = [], {}      # header stamps (ns) and FrameTruth kinds by them
        truths = [c for c in conns.values() if c.msgtype == TRUTH]
        wanted = [camera, joints, demos, *events, *truths] + ([fixes] if fixes else [])
        try:
            for conn, log_ns, raw in reader.messages(connections=wanted):
                msg = reader.deserialize(raw, conn.msgtype)
                t = _time(msg, log_ns, stamps)
                if conn is camera:       # the time only: pixels are decoded by iter_frames
                    frames.append(t)
                    frame_stamps.append(_ns(msg.header.stamp))
                elif conn.msgtype == TRUTH:
                    truth[_ns(msg.header.stamp)] = str(msg.kind)
                elif conn is joints:
                    q = _named(msg.name, msg.position, joint_names, 'joint states')
                    jt.append(t)
                    jq.append(q)
                elif conn is demos or conn is fixes:
                    c = _command_positions(msg, conn.msgtype, joint_names)
                    if c is not None:
                        (dt if conn is demos else ct).append(t)
                        (dq if conn is demos else cq).append(c)
                else:
                    ev.append((t, msg))
        except RecordingError:
            raise
        except Exception as exc:  # noqa: BLE001 - truncated chunk, bad CDR: a damaged bag
            raise BagError(f'{path}: damaged or truncated ({type(exc).__name__}: {exc}); '
                           f'{DAMAGED}') from exc
    finally:
        reader.close()
    for name, values in (('joint states', jq), ('demonstrated commands', dq),
                         ('corrections', cq)):
        widths = {len(v) for v in values}
        if len(widths) > 1:
            raise RecordingError(f'{path}: {name} change width within the bag: {sorted(widths)}')
    result = BagScan(str(path), bag_key(path), np.asarray(frames, np.float64),
                     np.asarray(jt, np.float64), _matrix(jq), np.asarray(dt, np.float64),
                     _matrix(dq), np.asarray(ct, np.float64), _matrix(cq))
    result.episodes = split_episodes(ev, result)
    result.frame_kinds = [truth.get(ns, '') for ns in frame_stamps] if truth else []
    return result


def _ns(stamp):
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _matrix(rows):
    return np.asarray(rows, np.float64) if rows else np.zeros((0, 0))


def split_episodes(events, scan_):
    """EpisodeSpans from (time, EpisodeEvent) pairs (see the module)."""
    events = sorted(events, key=lambda e: e[0])
    seen, unique = set(), []
    for t, msg in events:      # a latched event recorded twice (a re-made subscription)
        key = (t, msg.event, msg.episode, msg.seed)
        if key not in seen:
            seen.add(key)
            unique.append((t, msg))
    spans, current = [], None
    for t, msg in unique:
        if msg.event == START:
            if current is not None:           # START without END: ends at the next START
                current.end = t
                spans.append(current)
                scan_.warnings.append(f'episode {current.index} has no END event: outcome '
                                      f'unknown')
            current = EpisodeSpan(len(spans), t, np.inf, None, int(msg.seed), msg.instruction)
        elif msg.event == END and current is not None:
            current.end, current.success = t, bool(msg.success)
            spans.append(current)
            current = None
    if current is not None:
        spans.append(current)
        scan_.warnings.append(f'episode {current.index} has no END event: outcome unknown')
    if not events:
        scan_.warnings.append('no episode events: the whole bag is one episode')
        spans = [EpisodeSpan(0, -np.inf, np.inf)]
    return spans


def iter_frames(path, topics=None, wanted=None):
    """(frame index, (H, W, 3) uint8 RGB) of the camera topic, in recording order (the order
    of ``scan``'s frame_times); with ``wanted`` (a container of indices), only those frames
    are decoded and yielded."""
    topics = topics or StreamTopics()
    reader = _open(path)
    try:
        camera = next((c for c in reader.connections if _matches(c.topic, topics.camera)),
                      None)
        if camera is None:
            raise RecordingError(f'{path}: no camera topic {topics.camera!r}')
        for i, (conn, _, raw) in enumerate(reader.messages(connections=[camera])):
            if wanted is not None and i not in wanted:
                continue
            msg = reader.deserialize(raw, conn.msgtype)
            yield i, image_to_rgb(msg.width, msg.height, msg.encoding, msg.step,
                                  bytes(msg.data), bool(msg.is_bigendian))
    except RecordingError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise BagError(f'{path}: damaged or truncated ({type(exc).__name__}: {exc}); '
                       f'{DAMAGED}') from exc
    finally:
        reader.close()
