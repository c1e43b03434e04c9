"""vision_features: any transformers vision encoder + a small trained action head."""
import numpy as np
import pytest

from aura_ros.backbones import build_backbone
from aura_ros.backbones.tiny import build_tiny_vision
from aura_ros.params import backbone_block, read_params_file


def test_siglip_encoder_through_the_parameter_file(tiny_models):
    params, base_dir = read_params_file(tiny_models['params_vision'], 'policy_node')
    backbone = build_backbone(backbone_block(params), base_dir=base_dir)
    enc = backbone.encode(np.zeros((32, 32, 3), np.uint8), np.zeros(3))
    assert enc.features.shape == (48,)
    chunk = backbone.act(enc)
    assert chunk.shape == (4, 3) and np.all(np.isfinite(chunk))


@pytest.mark.parametrize('source', ['pooler', 'mean', 'cls'])
def test_vit_encoder_and_feature_sources(tmp_path, source):
    build_tiny_vision(tmp_path / 'vit', image_size=32, chunk_size=4, model_type='vit')
    backbone = build_backbone(dict(adapter='vision_features', model_path=str(tmp_path / 'vit'),
                                   image_size=32, action_dim=3, chunk_size=4, steps_per_chunk=2,
                                   feature_source=source))
    assert backbone.encode(np.zeros((32, 32, 3), np.uint8), np.zeros(3)).features.shape == (48,)


def test_missing_or_mismatched_action_head_refused(tmp_path):
    build_tiny_vision(tmp_path / 'v', image_size=32, chunk_size=4)
    block = dict(adapter='vision_features', model_path=str(tmp_path / 'v'), image_size=32,
                 action_dim=3, chunk_size=8, steps_per_chunk=2, feature_source='mean')
    with pytest.raises(ValueError, match='action head does not match'):
        build_backbone(block)
    (tmp_path / 'v' / 'action_head.safetensors').unlink()
    with pytest.raises(FileNotFoundError, match='action head'):
        build_backbone(dict(block, chunk_size=4))
