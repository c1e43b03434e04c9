"""State growth: bytes of live inference state of AURA and of a KV-cache, step by step.

Both memories are stepped through the streaming API (batch 1) with random features for
``steps`` steps; the size is read from the live state tensors (``state_bytes()``) at
log-spaced steps. Nothing is computed from a formula.
"""
import numpy as np
import torch
from tqdm.auto import tqdm

from aura_ros.core import AuraConfig, build_memory


def checkpoints(steps, points=60):
    return sorted(set(np.unique(np.geomspace(1, steps, points).astype(int)).tolist() + [steps]))


def run(steps=100_000, feature_dim=64, action_dim=7, seed=0, progress=True):
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    marks = set(checkpoints(steps))
    result = {}
    for kind in ('aura', 'kv_cache'):
        memory = build_memory(AuraConfig(feature_dim=feature_dim, action_dim=action_dim,
                                         kind=kind)).eval()
        memory.reset()
        features = torch.randn(1024, feature_dim)
        base = torch.zeros(action_dim)
        sizes, at = [], []
        for t in tqdm(range(1, steps + 1), desc=f'state-growth {kind}', disable=not progress,
                      mininterval=2.0):
            memory.step(features[t % 1024], base)
            if t in marks:
                at.append(t)
                sizes.append(memory.state_bytes())
        result[kind] = {'steps': at, 'state_bytes': sizes,
                        'writes': memory.total_writes, 'bytes_written': memory.bytes_written}
    final_aura, final_kv = result['aura']['state_bytes'][-1], result['kv_cache']['state_bytes'][-1]
    result['summary'] = {'steps': steps, 'aura_state_bytes_first': result['aura']['state_bytes'][0],
                         'aura_state_bytes_last': final_aura, 'kv_state_bytes_last': final_kv,
                         'kv_over_aura': final_kv / final_aura}
    return result


def plot(result, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind, style in (('aura', 'tab:red'), ('kv_cache', 'tab:gray')):
        ax.loglog(result[kind]['steps'], result[kind]['state_bytes'], color=style,
                  label=f"{kind}: {result[kind]['state_bytes'][-1]:,} B at step "
                        f"{result[kind]['steps'][-1]:,}")
    ax.set_xlabel('memory steps')
    ax.set_ylabel('live inference state (bytes)')
    ax.set_title(f"State growth: KV-cache / AURA = {result['summary']['kv_over_aura']:,.0f}x")
    ax.grid(True, which='both', alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
