"""Tiny backbones built from config (random or to-be-trained weights), saved like real ones.

Used by the tests (load through parameter files only) and by ``aura_ros.train`` as the
architecture of the embedded default VLA. Nothing is downloaded.
"""
from pathlib import Path

import torch

SIM_INSTRUCTIONS = ['reach the pad that was marked', 'reach the marked pad',
                    'go to the cued pad when the lamp turns green', 'hold until go']


def build_tokenizer(folder, texts=SIM_INSTRUCTIONS, vocab_size=200):
    """A small BPE tokenizer trained in-process on ``texts``, saved as tokenizer.json."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE(unk_token='<unk>'))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size,
                                  special_tokens=['<pad>', '<bos>', '<eos>', '<unk>'],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts) * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token='<bos>', eos_token='<eos>',
                                   pad_token='<pad>', unk_token='<unk>')
    fast.save_pretrained(folder)
    return fast


def tiny_pi0_config(image_size=64, patch_size=8, action_dim=3, chunk_size=8, vocab_size=300,
                    hidden=128, layers=2, expert_hidden=64, num_inference_steps=4):
    from transformers import PI0Config
    return PI0Config(
        vlm_config=dict(
            model_type='paligemma', projection_dim=hidden, image_token_id=vocab_size - 1,
            text_config=dict(model_type='gemma', hidden_size=hidden, num_hidden_layers=layers,
                             intermediate_size=2 * hidden, num_attention_heads=4,
                             num_key_value_heads=1, head_dim=32, vocab_size=vocab_size),
            vision_config=dict(model_type='siglip_vision_model', hidden_size=hidden,
                               intermediate_size=2 * hidden, num_hidden_layers=layers,
                               num_attention_heads=4, patch_size=patch_size,
                               image_size=image_size, vision_use_head=False)),
        dit_config=dict(model_type='gemma', hidden_size=expert_hidden, num_hidden_layers=layers,
                        intermediate_size=2 * expert_hidden, num_attention_heads=4,
                        num_key_value_heads=1, head_dim=32),
        chunk_size=chunk_size, max_state_dim=action_dim, max_action_dim=action_dim,
        num_inference_steps=num_inference_steps)


def build_tiny_pi0(folder, seed=0, **config_kw):
    """A random tiny PI0ForConditionalGeneration + tokenizer saved to ``folder``."""
    from transformers import PI0ForConditionalGeneration
    torch.manual_seed(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = PI0ForConditionalGeneration(tiny_pi0_config(**config_kw)).eval()
    model.save_pretrained(folder, safe_serialization=True)
    build_tokenizer(folder)
    return model


def build_tiny_vision(folder, image_size=32, state_dim=3, action_dim=3, chunk_size=4, seed=0,
                      model_type='siglip_vision_model'):
    """A random tiny vision encoder (SigLIP by default, or ViT) + action head in ``folder``."""
    from transformers import AutoModel, SiglipVisionConfig, ViTConfig

    from aura_ros.backbones.vision_features import ActionHead
    torch.manual_seed(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if model_type == 'vit':
        config = ViTConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=96, image_size=image_size, patch_size=8)
    else:
        config = SiglipVisionConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=96, image_size=image_size, patch_size=8)
    AutoModel.from_config(config).save_pretrained(folder, safe_serialization=True)
    ActionHead(config.hidden_size, state_dim, chunk_size, action_dim, hidden=32).save(
        folder / 'action_head.safetensors')
    return config
