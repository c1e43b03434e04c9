"""Frozen VLA backbones behind one interface, built by name from a parameter-file block.

Adapter modules import lazily (``base.ADAPTER_MODULES``), so a process that serves one adapter
(e.g. the OpenVLA-OFT server in its own env) never imports the others' dependencies.
"""
from aura_ros.backbones.base import (
                                     ADAPTER_MODULES,
                                     Backbone,
                                     BackboneConfig,
                                     BackboneUnavailable,
                                     Encoding,
                                     build_backbone,
                                     register_backbone,
                                     registered_backbones,
                                     resolve_path,
)

__all__ = ['Backbone', 'BackboneConfig', 'BackboneUnavailable', 'Encoding', 'build_backbone',
           'register_backbone', 'registered_backbones', 'resolve_path', 'ADAPTER_MODULES']
