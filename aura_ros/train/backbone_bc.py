"""Behaviour cloning of the embedded default VLA: a tiny PI0ForConditionalGeneration trained
with its own flow-matching loss on expert demos of the *visible* variant, then frozen.

Why the visible variant: cloning the memory variant trains the cue out of the features (a
memoryless policy cannot use it, so nothing rewards keeping it); trained on the visible
variant the features keep the target, and the memory learns to carry it.
"""
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from aura_ros.backbones.tiny import build_tokenizer, tiny_pi0_config
from aura_ros.train.sim_data import action_chunks, collect_demos

INSTRUCTION = 'reach the marked pad'


def stats(x):
    flat = x.reshape(-1, x.shape[-1])
    return flat.mean(0), np.maximum(flat.std(0), 1e-3)


def train_backbone(out_dir, episodes=240, steps=500, batch=64, lr=3e-4, chunk_size=8,
                   noise=0.3, seed=0, progress=True, variant='visible', engine='planar'):
    """Train and save the tiny PI0 (+ tokenizer) to ``out_dir``; returns the normalisation
    statistics (action/state mean and std) for the parameter file, also kept in the folder's
    training.json. ``variant``: the task the demos come from ('visible' for the shipped
    backbone; 'memory' gives the memoryless base trained on the memory task itself, a control
    of the closed-loop benchmark). ``engine``: the simulated arm (aura_ros.sim.engines)."""
    from transformers import PI0ForConditionalGeneration
    torch.manual_seed(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    demos = collect_demos(variant, range(10_000 + seed * 100_000,
                                           10_000 + seed * 100_000 + episodes),
                          noise=noise, progress=progress, engine=engine)
    images = np.concatenate([d.images for d in demos])
    states = np.concatenate([d.states for d in demos]).astype(np.float32)
    chunks = np.concatenate([action_chunks(d.actions, chunk_size) for d in demos]).astype(
        np.float32)
    a_mean, a_std = stats(chunks)
    s_mean, s_std = stats(states)
    tokenizer = build_tokenizer(out_dir)
    config = tiny_pi0_config(chunk_size=chunk_size, action_dim=chunks.shape[-1])
    model = PI0ForConditionalGeneration(config)
    image_tokens = (64 // 8) ** 2
    text = tokenizer(INSTRUCTION + '\n', add_special_tokens=False)['input_ids']
    prompt = torch.tensor([config.vlm_config.image_token_id] * image_tokens
                          + [tokenizer.bos_token_id] + text)
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2)                 # (N, 3, H, W) uint8
    states_n = torch.from_numpy((states - s_mean) / s_std)
    actions_n = torch.from_numpy((chunks - a_mean) / a_std)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    bar = tqdm(range(steps), desc=f'backbone BC ({variant})', disable=not progress,
               mininterval=2)
    for _ in bar:
        idx = torch.randint(len(pixels), (batch,), generator=gen)
        px = (pixels[idx].float() / 127.5 - 1.0)[:, None]                  # (B, 1, 3, H, W)
        ids = prompt.expand(batch, -1)
        loss = model(state=states_n[idx], input_ids=ids, pixel_values=px,
                     pixel_attention_mask=torch.ones(batch, 1, dtype=torch.bool),
                     attention_mask=torch.ones_like(ids), actions=actions_n[idx]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        bar.set_postfix(loss=f'{loss.item():.4f}')
    model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    norm = dict(action_mean=a_mean.tolist(), action_std=a_std.tolist(),
                state_mean=s_mean.tolist(), state_std=s_std.tolist(),
                instruction=INSTRUCTION, variant=variant, engine=engine, episodes=episodes,
                steps=steps,
                noise=noise, seed=seed,
                final_loss=float(loss.item()))
    (out_dir / 'training.json').write_text(json.dumps(norm, indent=2) + '\n')
    return norm
