"""Real-time control pieces, free of ROS and torch: time-stamped action chunks and how they
are executed at the controller rate."""
from aura_ros.control.chunks import (
    TRANSITIONS,
    ChunkExecutor,
    TimedChunk,
    chunk_targets,
)
from aura_ros.control.loop import ControlLoop, InferenceWorker, Tick

__all__ = ['TRANSITIONS', 'ChunkExecutor', 'ControlLoop', 'InferenceWorker', 'Tick',
           'TimedChunk', 'chunk_targets']
