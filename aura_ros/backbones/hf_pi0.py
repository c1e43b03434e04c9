"""``hf_pi0``: transformers' native VLA, ``PI0ForConditionalGeneration`` (PaliGemma + action
expert, flow matching).

encode: one prefix pass (SigLIP image tokens + instruction through the Gemma VLM) that yields
  both the memory's features (pooled prefix hidden states, ``feature_source``) and the prefix KV
  cache; act: ``num_inference_steps`` flow-matching steps from t=1 to 0 on that cache, exactly
  as ``sample_actions`` does, then un-normalisation with the parameter file's statistics.
The model folder is a ``save_pretrained`` directory (config.json + model.safetensors) with a
tokenizer (tokenizer.json); weights load with safetensors only.
"""
import numpy as np
import torch
from transformers import AutoTokenizer, PI0ForConditionalGeneration

from aura_ros.backbones.base import Backbone, Encoding, local_model_dir, register_backbone

FEATURE_SOURCES = ('prefix_mean', 'image_mean', 'text_mean', 'image_text_mean')


def image_to_pixels(image, size):
    """(H, W, 3) uint8 RGB at ``size`` -> (1, 1, 3, size, size) float in [-1, 1]."""
    if image.shape[:2] != (size, size):
        raise ValueError(f'image is {image.shape[1]}x{image.shape[0]}, backbone expects '
                         f'{size}x{size} (the perception node resizes)')
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    return (pixels / 127.5 - 1.0)[None, None]


@register_backbone('hf_pi0')
class HFPI0Backbone(Backbone):
    def __init__(self, config, base_dir=None, model=None, tokenizer=None):
        super().__init__(config)
        if config.feature_source not in FEATURE_SOURCES:
            raise ValueError(f'hf_pi0: feature_source must be one of {FEATURE_SOURCES}, got '
                             f'{config.feature_source!r}')
        if model is None:
            folder = local_model_dir(config, base_dir)
            model = PI0ForConditionalGeneration.from_pretrained(
                folder, local_files_only=True, use_safetensors=True,
                trust_remote_code=config.trust_remote_code, dtype=self.dtype)
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True,
                                                      trust_remote_code=config.trust_remote_code)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        mc = self.model.config
        vision = mc.vlm_config.vision_config
        if vision.image_size != config.image_size:
            raise ValueError(f'hf_pi0: backbone.image_size is {config.image_size} but the model '
                             f'was built for {vision.image_size}')
        if config.action_dim > mc.max_action_dim:
            raise ValueError(f'hf_pi0: action_dim {config.action_dim} > model max_action_dim '
                             f'{mc.max_action_dim}')
        if config.chunk_size != mc.chunk_size:
            raise ValueError(f'hf_pi0: backbone.chunk_size is {config.chunk_size}, the model '
                             f'predicts {mc.chunk_size}')
        self.image_tokens = (vision.image_size // vision.patch_size) ** 2
        self.image_token_id = mc.vlm_config.image_token_id
        self.feature_dim = mc.vlm_config.text_config.hidden_size
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self._prompt_cache = {}

    def prompt_ids(self, instruction):
        """image tokens + bos + instruction + newline (PaliGemma's prefix layout)."""
        if instruction not in self._prompt_cache:
            text = self.tokenizer(instruction + '\n', add_special_tokens=False)['input_ids']
            bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
            ids = [self.image_token_id] * self.image_tokens + bos + list(text)
            self._prompt_cache[instruction] = torch.tensor([ids], device=self.device)
            if len(self._prompt_cache) > 64:  # instructions change rarely; bound the cache
                self._prompt_cache.pop(next(iter(self._prompt_cache)))
        return self._prompt_cache[instruction]

    def model_inputs(self, image, state, instruction):
        """Tensors for the model, batch 1 (shared with training code)."""
        return self.batch_inputs([image], [state], instruction)

    def batch_inputs(self, images, states, instruction):
        """Tensors for B observations that share one instruction (one prompt length)."""
        mc = self.model.config
        ids = self.prompt_ids(instruction or self.config.instruction).expand(len(images), -1)
        padded = torch.zeros(len(states), mc.max_state_dim)
        for i, state in enumerate(states):
            state = torch.from_numpy(self.normalise_state(state))
            padded[i, :min(len(state), mc.max_state_dim)] = state[:mc.max_state_dim]
        pixels = torch.cat([image_to_pixels(im, self.config.image_size) for im in images])
        return dict(input_ids=ids, attention_mask=torch.ones_like(ids),
                    pixel_values=pixels.to(self.dtype),
                    pixel_attention_mask=torch.ones(len(images), 1, dtype=torch.bool),
                    state=padded.to(self.device, self.dtype))

    @torch.inference_mode()
    def _encode(self, inputs):
        """One prefix pass for a batch: (features (B, F), KV cache)."""
        pi0 = self.model.model
        embeds = pi0.embed_prefix(inputs['input_ids'], inputs['pixel_values'],
                                  inputs['pixel_attention_mask'])
        mask = inputs['attention_mask']
        out = pi0.vlm(inputs_embeds=embeds, attention_mask=mask,
                      position_ids=mask.cumsum(-1) - 1,  # without these, actions drift
                      token_type_ids=torch.zeros_like(mask), use_cache=True)
        hidden = out.last_hidden_state.float()                          # (B, L, H)
        n_img = self.image_tokens
        source = self.config.feature_source
        if source == 'prefix_mean':
            features = hidden.mean(1)
        elif source == 'image_mean':
            features = hidden[:, :n_img].mean(1)
        elif source == 'text_mean':
            features = hidden[:, n_img:].mean(1)
        else:
            features = torch.cat([hidden[:, :n_img].mean(1), hidden[:, n_img:].mean(1)], -1)
        return features.cpu(), out.past_key_values

    def _noise(self, noise_seed):
        """(chunk, max_action_dim) start noise: the seed's, or the backbone's generator's."""
        mc = self.model.config
        generator = self.generator if noise_seed is None else torch.Generator(
            device=self.device).manual_seed(int(noise_seed))
        return torch.randn(mc.chunk_size, mc.max_action_dim, generator=generator,
                           device=self.device)

    @torch.inference_mode()
    def _act(self, cache, inputs, noise):
        """Flow matching for a batch: noise (B, chunk, max_action_dim) -> (B, chunk, A)."""
        prefix_length = cache.get_seq_length()
        steps = self.config.num_inference_steps
        x = (self.config.noise_scale * noise).to(self.dtype)     # 0: from the noise's mean
        dt = -1.0 / steps
        B = x.shape[0]
        for i in range(steps):  # integrate the flow from t = 1 (noise) to t = 0 (actions)
            t = torch.full((B,), 1.0 + i * dt, dtype=torch.float32, device=self.device)
            velocity = self.model(state=inputs['state'], noise=x, timestep=t,
                                  attention_mask=inputs['attention_mask'],
                                  pixel_attention_mask=inputs['pixel_attention_mask'],
                                  past_key_values=cache).logits
            cache.crop(prefix_length - cache.get_seq_length())  # drop the suffix just added
            x = x + dt * velocity
        return np.stack([self.unnormalise_actions(a) for a in x.float().cpu().numpy()])

    def encode(self, image, state, instruction=''):
        inputs = self.model_inputs(image, state, instruction)
        features, cache = self._encode(inputs)
        return Encoding(features=features[0], cache=(cache, inputs))

    def act(self, encoding, noise_seed=None):
        cache, inputs = encoding.cache
        return self._act(cache, inputs, self._noise(noise_seed)[None])[0]

    def infer_batch(self, requests):
        """Many observations at once: one prefix pass and one flow integration per group of
        requests sharing an instruction (the same arithmetic as encode/act, batched)."""
        results = [None] * len(requests)
        groups = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.instruction or self.config.instruction, []).append(i)
        for instruction, index in groups.items():
            inputs = self.batch_inputs([requests[i].image for i in index],
                                       [requests[i].state for i in index], instruction)
            features, cache = self._encode(inputs)
            chunks = [None] * len(index)
            if any(requests[i].want_chunk for i in index):   # the batch shares one cache
                noise = torch.stack([self._noise(requests[i].noise_seed) for i in index])
                actions = self._act(cache, inputs, noise)
                chunks = [a if requests[i].want_chunk else None
                          for a, i in zip(actions, index)]
            for k, i in enumerate(index):
                results[i] = (features[k], chunks[k])
        return results

    def close(self):
        self.model = None
        self._prompt_cache.clear()
