"""hf_pi0: tiny PI0 built from config, saved, loaded through a parameter file only."""
import numpy as np
import pytest
import torch

from aura_ros.backbones import build_backbone
from aura_ros.params import backbone_block, read_params_file

IMAGE = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope='module')
def pi0(tiny_models):
    params, base_dir = read_params_file(tiny_models['params_pi0'], 'policy_node')
    return build_backbone(backbone_block(params), base_dir=base_dir)


def test_loaded_through_the_parameter_file(pi0):
    assert pi0.feature_dim == 128
    assert pi0.config.model_path == 'pi0' and pi0.config.trust_remote_code is False
    enc = pi0.encode(IMAGE, np.zeros(3), 'reach the marked pad')
    assert enc.features.shape == (128,) and torch.isfinite(enc.features).all()


def test_actions_equal_sample_actions_with_the_same_noise(pi0):
    """Our split (one prefix pass for features + cache, then the flow) is sample_actions."""
    pi0.generator.manual_seed(3)
    ours = pi0.act(pi0.encode(IMAGE, np.zeros(3), 'reach the marked pad'))
    inputs = pi0.model_inputs(IMAGE, np.zeros(3), 'reach the marked pad')
    noise = torch.randn(1, 8, 3, generator=torch.Generator().manual_seed(3))
    ref = pi0.model.sample_actions(state=inputs['state'], input_ids=inputs['input_ids'],
                                   pixel_values=inputs['pixel_values'],
                                   attention_mask=inputs['attention_mask'],
                                   pixel_attention_mask=inputs['pixel_attention_mask'],
                                   noise=noise, num_steps=4)[0].numpy()
    np.testing.assert_allclose(ours, ref * 0.05, rtol=1e-5, atol=1e-6)  # un-normalised by std


def test_features_depend_on_the_image(pi0):
    a = pi0.encode(IMAGE, np.zeros(3)).features
    b = pi0.encode(255 - IMAGE, np.zeros(3)).features
    assert (a - b).abs().max() > 1e-3


def test_wrong_image_size_and_config_mismatch_refused(pi0, tiny_models):
    with pytest.raises(ValueError, match='64x64'):
        pi0.encode(np.zeros((32, 32, 3), np.uint8), np.zeros(3))
    block = dict(tiny_models['pi0_block'], model_path=str(tiny_models['root'] / 'pi0'),
                 image_size=96)
    with pytest.raises(ValueError, match='image_size'):
        build_backbone(block)
    with pytest.raises(ValueError, match='chunk_size'):
        build_backbone(dict(block, image_size=64, chunk_size=16, steps_per_chunk=4))


def test_noise_scale_zero_integrates_from_the_noise_mean(pi0, tiny_models):
    """noise_scale 0: one chunk per observation whatever the seed, equal to sample_actions
    started from zeros; the default (1) samples different chunks for different seeds."""
    enc = pi0.encode(IMAGE, np.zeros(3), 'reach the marked pad')
    assert not np.allclose(pi0.act(enc, noise_seed=1), pi0.act(enc, noise_seed=2))
    block = dict(tiny_models['pi0_block'], model_path=str(tiny_models['root'] / 'pi0'),
                 noise_scale=0.0)
    mean = build_backbone(block)
    enc = mean.encode(IMAGE, np.zeros(3), 'reach the marked pad')
    a, b = mean.act(enc, noise_seed=1), mean.act(enc, noise_seed=2)
    np.testing.assert_array_equal(a, b)
    inputs = mean.model_inputs(IMAGE, np.zeros(3), 'reach the marked pad')
    ref = mean.model.sample_actions(state=inputs['state'], input_ids=inputs['input_ids'],
                                    pixel_values=inputs['pixel_values'],
                                    attention_mask=inputs['attention_mask'],
                                    pixel_attention_mask=inputs['pixel_attention_mask'],
                                    noise=torch.zeros(1, 8, 3), num_steps=4)[0].numpy()
    np.testing.assert_allclose(a, ref * 0.05, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='noise_scale'):
        build_backbone(dict(block, noise_scale=-1.0))


def test_a_batch_equals_one_by_one(pi0):
    """infer_batch (one prefix pass, one flow for the batch; two instructions: two groups)
    gives each request what encode + act give it alone, chunks seeded per request."""
    from aura_ros.backbones.base import InferRequest
    rng = np.random.default_rng(5)
    requests = [InferRequest(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
                             rng.normal(size=3).astype(np.float32),
                             'reach the marked pad' if i % 3 else 'go home',
                             want_chunk=i != 2, noise_seed=100 + i) for i in range(5)]
    batched = pi0.infer_batch(requests)
    for r, (features, chunk) in zip(requests, batched):
        enc = pi0.encode(r.image, r.state, r.instruction)
        torch.testing.assert_close(features, enc.features, rtol=1e-4, atol=1e-4)
        if r.want_chunk:
            np.testing.assert_allclose(chunk, pi0.act(enc, r.noise_seed), rtol=1e-4, atol=1e-4)
        else:
            assert chunk is None
