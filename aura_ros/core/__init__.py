"""AURA-Mem core: pure PyTorch/numpy, no rclpy. Build any memory arm with ``build_memory``."""
from aura_ros.core.baselines import GRUMemory, KVCacheMemory, NoMemory
from aura_ros.core.configuration_aura import (
    FAST_WEIGHT_KINDS,
    GATED_KINDS,
    KINDS,
    MEMORY_KINDS,
    AuraConfig,
)
from aura_ros.core.memory import MemoryPolicy, SequenceOutput, StepOutput, load_memory
from aura_ros.core.modeling_aura import FastWeightMemory

MODULES = {'fast_weight': FastWeightMemory, 'gru': GRUMemory, 'kv_cache': KVCacheMemory,
           'no_memory': NoMemory}     # the modules of configuration_aura.KINDS


def build_memory(config: AuraConfig) -> MemoryPolicy:
    """The memory arm ``config.kind`` (aura, always_write, ..., kv_cache, no_memory)."""
    return MODULES[KINDS[config.kind][0]](config)


__all__ = ['AuraConfig', 'MEMORY_KINDS', 'FAST_WEIGHT_KINDS', 'GATED_KINDS', 'MemoryPolicy',
           'StepOutput', 'SequenceOutput', 'FastWeightMemory', 'GRUMemory', 'KVCacheMemory',
           'NoMemory', 'build_memory', 'load_memory']
