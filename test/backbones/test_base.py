"""Backbone config validation, safe path handling, safetensors only, no remote code."""
import pytest

from aura_ros.backbones import BackboneConfig, build_backbone, resolve_path
from aura_ros.backbones.base import local_model_dir


@pytest.mark.parametrize('bad, reason', [
    (dict(adapter='nope'), 'not known'), (dict(dtype='float64'), 'dtype'),
    (dict(device='tpu'), 'device'), (dict(image_size=4), 'image_size'),
    (dict(steps_per_chunk=9), 'steps_per_chunk'), (dict(action_std=[1.0]), 'differ'),
    (dict(action_mean=[0.0] * 3, action_std=[1.0, 0.0, 1.0]), 'std'),
    (dict(action_mean=[0.0, 0.0], action_std=[1.0, 1.0]), 'action_dim'),
    (dict(state_mean=[float('nan')], state_std=[1.0]), 'finite')])
def test_config_refuses_bad_values_with_the_reason(bad, reason):
    block = dict(adapter='hf_pi0', action_dim=3, chunk_size=8, steps_per_chunk=4)
    with pytest.raises(ValueError, match=reason):
        BackboneConfig.from_dict({**block, **bad})


def test_unknown_keys_refused():
    with pytest.raises(ValueError, match='unknown backbone parameters'):
        BackboneConfig.from_dict(dict(adapter='hf_pi0', modle_path='x'))


def test_trust_remote_code_is_off_by_default():
    assert BackboneConfig(adapter='hf_pi0').trust_remote_code is False


def test_paths_resolve_relative_to_the_parameter_file_and_package(tmp_path):
    (tmp_path / 'm').mkdir()
    assert resolve_path('m', tmp_path) == (tmp_path / 'm').resolve()
    assert resolve_path('package://aura_ros/config').name == 'config'
    with pytest.raises(FileNotFoundError, match='resolved to'):
        resolve_path('missing', tmp_path)
    with pytest.raises(ValueError):
        resolve_path('', tmp_path)
    with pytest.raises(ValueError, match='NUL'):
        resolve_path('a\x00b', tmp_path)


def test_hub_ids_are_not_downloaded_and_pickles_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing is downloaded'):
        local_model_dir(BackboneConfig(adapter='hf_pi0', model_path='lerobot/pi0'), tmp_path)
    (tmp_path / 'pickled').mkdir()
    (tmp_path / 'pickled' / 'pytorch_model.bin').write_bytes(b'not really')
    with pytest.raises(ValueError, match='safetensors only'):
        local_model_dir(BackboneConfig(adapter='hf_pi0', model_path='pickled'), tmp_path)


def test_model_folder_with_wrong_shapes_is_refused(tmp_path, tiny_models):
    """A backbone folder whose weights do not match its config.json fails to load."""
    import json
    import shutil
    folder = tmp_path / 'pi0'
    shutil.copytree(tiny_models['root'] / 'pi0', folder)
    config = json.loads((folder / 'config.json').read_text())
    config['vlm_config']['text_config']['hidden_size'] = 96
    (folder / 'config.json').write_text(json.dumps(config))
    block = dict(tiny_models['pi0_block'], model_path=str(folder))
    with pytest.raises(Exception, match='(?i)size|shape|mismatch'):
        build_backbone(block)


def test_delay_ms_adds_latency_to_every_observation_and_keeps_the_outputs(tiny_models):
    """backbone.delay_ms emulates a slower VLA: same encodings and chunks, each encode()
    (one per observation) later, act() not delayed again."""
    import time

    import numpy as np
    block = dict(tiny_models['pi0_block'], model_path=str(tiny_models['root'] / 'pi0'))
    fast = build_backbone(block)
    slow = build_backbone(dict(block, delay_ms=80.0))
    image = np.zeros((64, 64, 3), np.uint8)
    state = np.zeros(3, np.float32)
    enc_fast = fast.encode(image, state)
    start = time.monotonic()
    enc_slow = slow.encode(image, state)
    assert time.monotonic() - start >= 0.08                 # a lower bound: never flaky
    np.testing.assert_array_equal(enc_slow.features, enc_fast.features)
    np.testing.assert_array_equal(slow.act(enc_slow, noise_seed=5),
                                  fast.act(enc_fast, noise_seed=5))
    assert slow.feature_dim == fast.feature_dim and slow.config.delay_ms == 80.0
    with pytest.raises(ValueError, match='delay_ms'):
        build_backbone(dict(block, delay_ms=-1.0))
