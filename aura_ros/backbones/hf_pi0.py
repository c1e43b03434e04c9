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
        mc = self.model.config
        ids = self.prompt_ids(instruction or self.config.instruction)
        state = torch.from_numpy(self.normalise_state(state))
        padded = torch.zeros(1, mc.max_state_dim)
        padded[0, :min(len(state), mc.max_state_dim)] = state[:mc.max_state_dim]
        return dict(input_ids=ids, attention_mask=torch.ones_like(ids),
                    pixel_values=image_to_pixels(image, self.config.image_size).to(self.dtype),
                    pixel_attention_mask=torch.ones(1, 1, dtype=torch.bool),
                    state=padded.to(self.device, self.dtype))

    @torch.inference_mode()
    def encode(self, image, state, instruction=''):
        inputs = self.model_inputs(image, state, instruction)
        pi0 = self.model.model
        embeds = pi0.embed_prefix(inputs['input_ids'], inputs['pixel_values'],
                                  inputs['pixel_attention_mask'])
        mask = inputs['attention_mask']
        out = pi0.vlm(inputs_embeds=embeds, attention_mask=mask,
                      position_ids=mask.cumsum(-1) - 1,  # without these, actions drift
                      token_type_ids=torch.zeros_like(mask), use_cache=True)
        hidden = out.last_hidden_state[0].float()                       # (L, H)
        n_img = self.image_tokens
        source = self.config.feature_source
        if source == 'prefix_mean':
            features = hidden.mean(0)
        elif source == 'image_mean':
            features = hidden[:n_img].mean(0)
        elif source == 'text_mean':
            features = hidden[n_img:].mean(0)
        else:
            features = torch.cat([hidden[:n_img].mean(0), hidden[n_img:].mean(0)])
        return Encoding(features=features.cpu(), cache=(out.past_key_values, inputs))

    @torch.inference_mode()
    def act(self, encoding, noise_seed=None):
        cache, inputs = encoding.cache
        mc = self.model.config
        prefix_length = cache.get_seq_length()
        steps = self.config.num_inference_steps
        generator = self.generator if noise_seed is None else torch.Generator(
            device=self.device).manual_seed(int(noise_seed))
        x = torch.randn(1, mc.chunk_size, mc.max_action_dim, generator=generator,
                        device=self.device)
        x = (self.config.noise_scale * x).to(self.dtype)     # 0: from the noise's mean
        dt = -1.0 / steps
        for i in range(steps):  # integrate the flow from t = 1 (noise) to t = 0 (actions)
            t = torch.full((1,), 1.0 + i * dt, dtype=torch.float32, device=self.device)
            velocity = self.model(state=inputs['state'], noise=x, timestep=t,
                                  attention_mask=inputs['attention_mask'],
                                  pixel_attention_mask=inputs['pixel_attention_mask'],
                                  past_key_values=cache).logits
            cache.crop(prefix_length - cache.get_seq_length())  # drop the suffix just added
            x = x + dt * velocity
        return self.unnormalise_actions(x[0].float().cpu().numpy())

    def close(self):
        self.model = None
        self._prompt_cache.clear()
