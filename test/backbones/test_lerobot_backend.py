"""The LeRobot backend without LeRobot: stand-in policies with LeRobot's interface (config with
input/output features and chunk_size, predict_action_chunk, the submodule whose forward the
features are tapped from, pre/post processors) replace ``load_policy``. The batch handed to
LeRobot's preprocessor, the tapped features, the post-processed chunk, clear errors, and
serving through the real gRPC server and the robot's ``remote`` adapter on loopback."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from aura_ros.backbones import build_backbone
from aura_ros.backbones import lerobot_backend as lb

CAM, STATE = 'observation.images.front', 'observation.state'
D, C, A, S = 12, 6, 4, 4          # dim_model, chunk_size, action width, state width


def feature(kind, *shape):
    return SimpleNamespace(type=kind, shape=tuple(shape))


def tokens(batch):
    """(B, 2, S) input tokens: the state, and the camera's channel means (padded)."""
    means = batch[CAM].mean((2, 3))
    return torch.stack([batch[STATE], nn.functional.pad(means, (0, S - 3))], 1)


class ActModel(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder, self.action_head = nn.Linear(S, D), nn.Linear(D, A)
        self.steps = nn.Parameter(torch.randn(C, D))

    def forward(self, batch):
        encoder_out = self.encoder(tokens(batch).transpose(0, 1))        # (tokens, B, D)
        return self.action_head(encoder_out.mean(0)[:, None] + self.steps)  # (B, C, A)


class StandInAct(nn.Module):
    """ACT's interface: config, model.encoder (hooked), predict_action_chunk(batch)."""

    def __init__(self, cameras=(CAM,), size=32):
        super().__init__()
        self.config = SimpleNamespace(
            type='act', chunk_size=C, dim_model=D,
            input_features={**{k: feature('VISUAL', 3, size, size) for k in cameras},
                            STATE: feature('STATE', S)},
            output_features={'action': feature('ACTION', A)})
        self.model = ActModel()
        self.seen = []

    @torch.no_grad()
    def predict_action_chunk(self, batch):
        self.seen.append(batch)
        return self.model(batch)


class Processors:
    """Stand-ins for LeRobot's pipelines: the preprocessor records the raw batch and normalises
    the state; the postprocessor un-normalises actions (x 10 + 3)."""

    def __init__(self):
        self.raw = []

    def pre(self, batch):
        self.raw.append(batch)
        return dict(batch, **{STATE: (batch[STATE] - 1.0) / 2.0})

    @staticmethod
    def post(action):
        assert action.ndim == 2          # one (B, A) step at a time, as LeRobot's server does
        return action * 10.0 + 3.0


def checkpoint(folder, policy_type='act', steps=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'config.json').write_text(json.dumps({'type': policy_type}))
    (folder / 'model.safetensors').write_bytes(b'')
    for name in lb.PROCESSORS:
        (folder / name).write_text(json.dumps({'steps': steps or [
            {'registry_name': 'normalizer_processor'}, {'registry_name': 'device_processor'}]}))
    return folder


@pytest.fixture
def make(tmp_path, monkeypatch):
    """(block overrides, policy) -> (backbone, policy, processors) with load_policy patched."""
    def build(policy=None, **block):
        policy = policy or StandInAct()
        procs = Processors()
        monkeypatch.setattr(lb, 'load_policy', lambda folder, device, local=True: (
            policy, procs.pre, procs.post))
        folder = checkpoint(tmp_path / 'pretrained_model', policy.config.type)
        cfg = dict(adapter='lerobot', model_path=str(folder), image_size=32, action_dim=A,
                   chunk_size=C, steps_per_chunk=4, instruction='stack the cubes')
        cfg.update(block)
        backbone = build_backbone(cfg)
        procs.raw.clear()
        policy.seen.clear() if hasattr(policy, 'seen') else None
        return backbone, policy, procs
    return build


def frame(seed=0, size=32):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_robot_inputs_become_lerobots_batch(make):
    backbone, _, procs = make()
    image = np.zeros((32, 32, 3), np.uint8)
    image[..., 0], image[..., 2] = 255, 51
    image[3, 7] = (10, 20, 30)                              # one pixel tells CHW from HWC
    state = np.arange(S, dtype=np.float32)
    backbone.infer(image, state, '')
    raw = procs.raw[-1]
    assert set(raw) == {CAM, STATE, 'task'} and raw['task'] == ['stack the cubes']
    frames = raw[CAM]
    assert frames.dtype == torch.float32 and tuple(frames.shape) == (1, 3, 32, 32)
    assert frames.min() >= 0 and frames.max() <= 1
    assert frames[0, 0, 0, 0] == 1.0 and frames[0, 1, 0, 0] == 0.0
    assert frames[0, 2, 0, 0] == pytest.approx(0.2)
    np.testing.assert_allclose(frames[0, :, 3, 7].numpy(), np.array([10, 20, 30]) / 255,
                               rtol=1e-6)
    assert raw[STATE].dtype == torch.float32 and raw[STATE].tolist() == [state.tolist()]
    backbone.infer(image, state, 'open the drawer')
    assert procs.raw[-1]['task'] == ['open the drawer']


def test_frames_are_resized_to_the_checkpoint_camera(make):
    backbone, policy, procs = make(image_size=48)
    assert backbone.config.image_size == 48
    backbone.infer(np.full((48, 48, 3), 255, np.uint8), np.zeros(S), 'x')
    assert tuple(procs.raw[-1][CAM].shape) == (1, 3, 32, 32)
    assert torch.all(procs.raw[-1][CAM] == 1.0)


def test_features_come_from_the_encoder_tap_at_the_stated_width(make):
    backbone, policy, _ = make()
    assert backbone.feature_dim == D
    state = np.linspace(-1, 1, S).astype(np.float32)
    enc, _ = backbone.infer(frame(1), state, 'x')
    batch = policy.seen[-1]
    with torch.no_grad():
        expected = policy.model.encoder(tokens(batch).transpose(0, 1)).mean(0)[0]
    assert enc.features.shape == (D,) and enc.features.dtype == torch.float32
    torch.testing.assert_close(enc.features, expected)
    other, _ = backbone.infer(frame(2), state, 'x')
    assert not torch.allclose(other.features, enc.features)
    assert 'forward' in policy.model.encoder.__dict__        # tapped ...
    backbone.close()
    assert 'forward' not in policy.model.encoder.__dict__    # ... and restored on close
    with pytest.raises(RuntimeError, match='act feature tap saw no forward pass'):
        backbone.infer(frame(1), state, 'x')


def test_the_chunk_is_the_post_processed_one(make):
    backbone, policy, _ = make()
    assert (backbone.config.chunk_size, backbone.config.action_dim) == (C, A)
    enc, chunk = backbone.infer(frame(3), np.ones(S), 'x')
    with torch.no_grad():
        raw = policy.model(policy.seen[-1])[0].numpy()
    assert chunk.shape == (C, A)
    np.testing.assert_allclose(chunk, raw * 10 + 3, rtol=1e-5)
    assert not np.allclose(chunk, raw)
    np.testing.assert_array_equal(backbone.act(enc), chunk)


def test_a_policy_trained_on_degrees_sees_degrees_and_the_robot_gets_radians(make):
    rad, policy, procs = make()
    _, in_rad = rad.infer(frame(3), np.full(S, 0.5), 'x')
    deg, policy_deg, procs_deg = make(options={'joint_units': 'deg'})
    _, in_deg = deg.infer(frame(3), np.full(S, 0.5), 'x')
    np.testing.assert_allclose(procs_deg.raw[-1][STATE].numpy(), np.degrees(np.full((1, S), 0.5)),
                               rtol=1e-6)
    with torch.no_grad():                       # the policy's own (degree) chunk, in radians
        raw = policy_deg.model(policy_deg.seen[-1])[0].numpy()
    np.testing.assert_allclose(in_deg, np.radians(raw * 10 + 3), rtol=1e-5)
    assert not np.allclose(in_deg, in_rad)
    with pytest.raises(ValueError, match="joint_units must be 'rad' or 'deg', got 'grad'"):
        make(options={'joint_units': 'grad'})


def test_a_batch_is_one_pass_with_each_callers_answer(make):
    from aura_ros.backbones.base import InferRequest
    backbone, policy, _ = make()
    requests = [InferRequest(frame(i), np.full(S, i, np.float32), 'x', want_chunk=i != 1)
                for i in range(3)]
    out = backbone.infer_batch(requests)
    assert len(policy.seen) == 1 and policy.seen[0][CAM].shape[0] == 3
    assert out[1][1] is None
    for r, (features, chunk) in zip(requests, out):
        enc, alone = backbone.infer(r.image, r.state, 'x')
        torch.testing.assert_close(features, enc.features, rtol=1e-5, atol=1e-6)
        if chunk is not None:
            np.testing.assert_allclose(chunk, alone, rtol=1e-5, atol=1e-6)


def test_other_cameras_of_the_checkpoint(make):
    two = (CAM, 'observation.images.wrist')
    with pytest.raises(ValueError, match=r"takes 2 cameras .*set options.other_cameras"):
        make(StandInAct(two))
    backbone, _, procs = make(StandInAct(two), options={'other_cameras': 'zeros'})
    backbone.infer(frame(), np.zeros(S), 'x')
    assert torch.all(procs.raw[-1][two[1]] == 0) and procs.raw[-1][CAM].max() > 0
    backbone, _, procs = make(StandInAct(two), options={'camera_key': two[1],
                                                        'other_cameras': 'copy'})
    backbone.infer(frame(), np.zeros(S), 'x')
    torch.testing.assert_close(procs.raw[-1][CAM], procs.raw[-1][two[1]])


def test_clear_errors(make, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match='is not a local folder'):
        make(model_path=str(tmp_path / 'nowhere'))
    with pytest.raises(ValueError, match=r"camera_key 'observation.images.top' is not a camera "
                                         r"of the checkpoint; its cameras: \['observation.images"
                                         r".front'\]"):
        make(options={'camera_key': 'observation.images.top'})
    backbone, _, _ = make()
    with pytest.raises(ValueError, match=r"state has 3 values, the checkpoint's "
                                         r"observation.state takes 4"):
        backbone.infer(frame(), np.zeros(3), 'x')
    with pytest.raises(ValueError, match="policy type 'diffusion' .* is not served: features "
                                         r"are defined for \['act', 'smolvla'\]"):
        lb.read_checkpoint(checkpoint(tmp_path / 'diffusion', 'diffusion'))
    bare = tmp_path / 'bare'
    bare.mkdir()
    (bare / 'config.json').write_text('{"type": "act"}')
    with pytest.raises(FileNotFoundError, match='not a LeRobot pretrained_model folder: no '
                                                'model.safetensors, policy_preprocessor.json'):
        lb.read_checkpoint(bare)
    evil = checkpoint(tmp_path / 'evil', steps=[{'class': 'subprocess.Popen',
                                                 'config': {'args': ['true']}}])
    with pytest.raises(ValueError, match=r"names steps by import path \['subprocess.Popen'\]"):
        lb.read_checkpoint(evil)


class PrefixVLM(nn.Module):
    """SmolVLA's vlm_with_expert: called on [prefix, None] once, then on [None, suffix]."""

    def __init__(self, width):
        super().__init__()
        self.proj = nn.Linear(S, width)

    def forward(self, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache=None):
        prefix, suffix = inputs_embeds
        return [None if prefix is None else self.proj(prefix), suffix], None


class StandInSmolVLA(nn.Module):
    WIDTH = 9

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.config = SimpleNamespace(
            type='smolvla', chunk_size=C, max_action_dim=8,
            input_features={CAM: feature('VISUAL', 3, 32, 32), STATE: feature('STATE', S)},
            output_features={'action': feature('ACTION', A)})
        self.model = nn.Module()
        self.model.vlm_with_expert = PrefixVLM(self.WIDTH)
        self.seen = []

    @torch.no_grad()
    def predict_action_chunk(self, batch, noise=None):
        self.seen.append(batch)
        prefix = nn.functional.pad(tokens(batch), (0, 0, 0, 2))   # 2 padding tokens
        pad = torch.tensor([True, True, False, False]).expand(len(prefix), 4)
        vlm = self.model.vlm_with_expert
        # SmolVLA calls .forward directly (forward hooks would not see it)
        (hidden, _), _ = vlm.forward(attention_mask=pad[:, None, :] & pad[:, :, None],
                                     inputs_embeds=[prefix, None])
        for _ in range(2):                                          # denoising steps
            vlm.forward(attention_mask=None, inputs_embeds=[None, noise])
        return noise[:, :, :A] + hidden[:, :2].mean(1, keepdim=True)[..., :A]


def test_smolvla_features_are_the_prefix_mean_over_real_tokens_and_noise_is_seeded(make):
    backbone, policy, _ = make(StandInSmolVLA())
    assert backbone.feature_dim == StandInSmolVLA.WIDTH
    state = np.ones(S, np.float32)
    enc, chunk = backbone.infer(frame(4), state, 'x', noise_seed=7)
    with torch.no_grad():
        prefix = policy.model.vlm_with_expert.proj(tokens(policy.seen[-1]))   # real tokens
    torch.testing.assert_close(enc.features, prefix.mean(1)[0])
    again = backbone.infer(frame(4), state, 'x', noise_seed=7)[1]
    other = backbone.infer(frame(4), state, 'x', noise_seed=8)[1]
    np.testing.assert_array_equal(again, chunk)
    assert chunk.shape == (C, A) and not np.allclose(other, chunk)


def test_served_through_the_grpc_server_and_the_remote_adapter(make, tmp_path, monkeypatch):
    """``server --backend lerobot`` on a parameter file of the robot's ``remote`` block, the
    real gRPC server on loopback, the robot's adapter: widths, features and chunk as served
    in-process; a state of the wrong width is refused by the server."""
    from aura_ros.backbones.server import build_server, load_backbone
    make()                                      # patches load_policy, writes the checkpoint
    params = tmp_path / 'lerobot.yaml'
    params.write_text(f"""/**:
  ros__parameters:
    backbone:
      adapter: remote
      model_path: {tmp_path / 'pretrained_model'}
      image_size: 32
      action_dim: {A}
      chunk_size: {C}
      instruction: stack the cubes
      options:
        camera_key: {CAM}
""")
    local, model_id = load_backbone(params, 'lerobot')
    # LeRobot names every checkpoint pretrained_model: the id keeps the run's path too
    assert model_id == '/'.join((tmp_path / 'pretrained_model').parts[-4:])
    assert local.config.adapter == 'lerobot'
    server, port = build_server(local, '127.0.0.1:0', model_id)
    server.start()
    remote = None
    try:
        remote = build_backbone(dict(adapter='remote', action_dim=A, chunk_size=C,
                                     image_size=32, options=dict(port=port)))
        assert (remote.feature_dim, remote.state_dim, remote.image_size,
                remote.server_adapter) == (D, S, 32, 'lerobot')
        state = np.linspace(0, 1, S).astype(np.float32)
        enc_r, chunk_r = remote.infer(frame(5), state, 'x')
        enc_l, chunk_l = local.infer(frame(5), state, 'x')
        torch.testing.assert_close(enc_r.features, enc_l.features)
        np.testing.assert_allclose(chunk_r, chunk_l, rtol=1e-6)
        assert chunk_r.shape == (C, A)
        with pytest.raises(RuntimeError, match='INVALID_ARGUMENT: state has 3 values, the '
                                               'backbone takes 4'):
            remote.infer(frame(5), state[:3], 'x')
        # the robot sends one position per joint (action_dim): another state width is refused
        # at start, not on every call
        with pytest.raises(ValueError, match=r'state_dim: server 4 != the joints the robot '
                                             r'sends \(action_dim 3\)'):
            build_backbone(dict(adapter='remote', action_dim=3, chunk_size=C,
                                options=dict(port=port)))
        with pytest.raises(ValueError, match='chunk_size: server 6 != parameter file 8'):
            build_backbone(dict(adapter='remote', action_dim=A, chunk_size=8,
                                options=dict(port=port)))
    finally:
        if remote is not None:
            remote.close()
        server.stop(0)
