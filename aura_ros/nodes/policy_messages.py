"""What the policy node reads and sends, as plain functions: input checks (a frame, a joint
state) and message building (the command, a GateEvent, MemoryStatus, the memory report).
No node here: policy_node.py calls these with its parameters, tests call them directly.

An input that cannot be used raises ``BadInput`` with the reason the node logs and counts.
"""
import numpy as np
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from aura_ros.core.snapshot import state_digest
from aura_ros.msg import GateEvent, MemoryStatus


class BadInput(ValueError):
    """A frame or joint state the node cannot use (dropped and counted, never acted on)."""


# ---- inputs ------------------------------------------------------------------------------------
def frame_image(msg, size):
    """(size, size, 3) uint8 view of an rgb8 ``sensor_msgs/Image`` of the backbone's size."""
    if msg.encoding != 'rgb8' or msg.height != size or msg.width != size or \
            len(msg.data) != size * size * 3:
        raise BadInput(f'ignored frame {msg.width}x{msg.height} {msg.encoding}: expects rgb8 '
                       f'{size}x{size} from perception_node')
    return np.frombuffer(msg.data, np.uint8).reshape(size, size, 3)


def joint_positions(msg, names):
    """The positions of ``names`` (command order) from a ``sensor_msgs/JointState``."""
    index = {n: i for i, n in enumerate(msg.name)}
    missing = [n for n in names if n not in index]
    if missing or len(msg.position) != len(msg.name):
        raise BadInput(f'ignored joint state: missing joints {missing} or '
                       f'{len(msg.position)} positions for {len(msg.name)} names')
    positions = np.array([msg.position[index[n]] for n in names], np.float64)
    if not np.all(np.isfinite(positions)):
        raise BadInput(f'ignored joint state with non-finite positions {positions.tolist()}')
    return positions


# ---- outputs -----------------------------------------------------------------------------------
def command_type(kind):
    """The message class of ``command.type``."""
    return JointTrajectory if kind == 'joint_trajectory' else Float64MultiArray


def command_message(positions, kind, joint_names, time_from_start):
    """A joint position command: one JointTrajectory point reached after ``time_from_start``
    seconds, or a Float64MultiArray (``kind`` = ``command.type``)."""
    values = [float(x) for x in positions]
    if kind != 'joint_trajectory':
        return Float64MultiArray(data=values)
    point = JointTrajectoryPoint(positions=values)
    point.time_from_start.sec = int(time_from_start)
    point.time_from_start.nanosec = int((time_from_start - int(time_from_start)) * 1e9)
    return JointTrajectory(joint_names=list(joint_names), points=[point])


def gate_event(step, memory, sequence, frame_header, stamp, steps_without_memory=0):
    """The GateEvent of one memory step (``step``: a PolicyStep; ``memory``: the runner's memory
    after the step, or None for the frozen policy alone)."""
    steps = memory.total_steps if memory else steps_without_memory
    event = GateEvent(step=steps, sequence=sequence, wrote=step.wrote,
                      gate_probability=float(step.gate_probability),
                      surprise=float(step.surprise),
                      state_bytes=memory.state_bytes() if memory else 0,
                      total_writes=memory.total_writes if memory else 0, total_steps=steps,
                      bytes_written=memory.bytes_written if memory else 0,
                      step_latency_ms=float(step.total_ms),
                      backbone_ms=float(step.backbone_ms), memory_ms=float(step.memory_ms))
    event.header.stamp = stamp
    event.header.frame_id = frame_header.frame_id
    event.frame_stamp = frame_header.stamp
    return event


def memory_report(memory, durable, **node):
    """The memory's report (``~/report_memory``, MemoryStatus, /diagnostics): kind, sizes,
    steps, writes, the state's digest; ``node`` adds the node's fields (state, armed, ...)."""
    steps = memory.total_steps if memory else 0
    return dict(node, memory_kind=memory.config.kind if memory else 'none',
                d_key=memory.config.d_key if memory else 0,
                d_value=memory.config.d_value if memory else 0,
                state_bytes=memory.state_bytes() if memory else 0, total_steps=steps,
                total_writes=memory.total_writes if memory else 0,
                bytes_written=memory.bytes_written if memory else 0,
                write_rate=(memory.total_writes / steps) if steps else 0.0,
                storage_bytes_written=durable.bytes_written if durable else 0,
                state_sha256=state_digest(memory) if memory else '',
                snapshot_path=str(durable.path if durable else ''))


def memory_status(report, backbone, mean_step_ms, dropped_frames, stamp):
    status = MemoryStatus(backbone=backbone, memory_kind=report['memory_kind'],
                          d_key=report['d_key'], d_value=report['d_value'],
                          state_bytes=report['state_bytes'], total_steps=report['total_steps'],
                          total_writes=report['total_writes'],
                          write_rate=float(report['write_rate']),
                          mean_step_latency_ms=mean_step_ms,
                          bytes_written=report['bytes_written'], dropped_frames=dropped_frames)
    status.header.stamp = stamp
    return status
