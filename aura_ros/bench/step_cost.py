"""Per-step cost of the memory at growing horizons: AURA, always-write, KV-cache.

Each memory is stepped through its streaming API (batch 1, features in, action out) from
step 1 to the largest horizon; at each horizon h the next ``window`` steps are timed one by one
(perf_counter), giving the median and p99 per-step time there (``median_us``, ``p99_us``: the
whole step, projections and action head included). ``core_*`` times only the memory operation
the arms differ in, with the very functions their steps call: the delta-rule read and write
for the fast-weight memories (``FastStep.read`` + ``write``), the append into the preallocated
buffers and the compiled attention over the cache for the KV-cache (``FastKV.attend``). Both
are engineered alike: one compiled (numba) call per step for the whole step, the same compiled
encoder and action head, state in preallocated arrays. All arms run in one process, one after
another, with the same random inputs, so ratios compare like with like.
"""
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from aura_ros.core import AuraConfig, build_memory

ARMS = ('aura', 'always_write', 'kv_cache')


def run(horizons=(1000, 10_000, 100_000), window=300, feature_dim=128, action_dim=3, seed=0,
        progress=True):
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    horizons = sorted(horizons)
    features = torch.randn(4096, feature_dim)
    base = torch.zeros(action_dim)
    result = {'horizons': horizons, 'window': window, 'feature_dim': feature_dim, 'arms': {}}
    for arm in ARMS:
        memory = build_memory(AuraConfig(feature_dim=feature_dim, action_dim=action_dim,
                                         kind=arm)).eval()
        memory.reset()
        stats = {'median_us': [], 'p99_us': [], 'mean_us': [], 'state_bytes': [],
                 'core_median_us': [], 'core_p99_us': []}
        step = 0
        bar = tqdm(total=horizons[-1] + window, desc=f'step-cost {arm}', disable=not progress,
                   mininterval=2.0)
        for h in horizons:
            while step < h:  # advance untimed to the horizon
                memory.step(features[step % 4096], base)
                step += 1
                if step % 1000 == 0:
                    bar.update(1000)
            times = np.empty(window)
            for i in range(window):
                x = features[step % 4096]
                t0 = time.perf_counter()
                memory.step(x, base)
                times[i] = time.perf_counter() - t0
                step += 1
            stats['median_us'].append(float(np.median(times) * 1e6))
            stats['p99_us'].append(float(np.percentile(times, 99) * 1e6))
            stats['mean_us'].append(float(times.mean() * 1e6))
            stats['state_bytes'].append(memory.state_bytes())
            core = time_core(memory, window)
            stats['core_median_us'].append(float(np.median(core) * 1e6))
            stats['core_p99_us'].append(float(np.percentile(core, 99) * 1e6))
        bar.close()
        result['arms'][arm] = stats
    aura = result['arms']['aura']['median_us']
    core = result['arms']['aura']['core_median_us']
    result['ratios'] = {
        'aura_last_over_first': aura[-1] / aura[0],
        'aura_core_last_over_first': core[-1] / core[0],
        'kv_over_aura_core': [kv / a for kv, a in
                              zip(result['arms']['kv_cache']['core_median_us'], core)],
        'kv_over_aura': [kv / a for kv, a in zip(result['arms']['kv_cache']['median_us'], aura)],
        'always_write_over_aura': [w / a for w, a in
                                   zip(result['arms']['always_write']['median_us'], aura)]}
    return result


@torch.inference_mode()
def time_core(memory, window, seed=1):
    """Per-call time of the arm's memory operation alone (see the module docstring)."""
    rng = np.random.default_rng(seed)
    cfg = memory.config
    kq = rng.standard_normal((2, cfg.d_key)).astype(np.float32)
    kq /= np.linalg.norm(kq, axis=1, keepdims=True)
    v = rng.standard_normal(cfg.d_value).astype(np.float32)
    times = np.empty(window)
    if cfg.kind == 'kv_cache':   # append into the preallocated buffers, compiled attention
        fast = memory._fast
        for i in range(window):
            t0 = time.perf_counter()
            memory._reserve()
            keys, values = memory._kv_np
            keys[memory._n], values[memory._n] = kq[0], v
            memory._n += 1
            fast.attend(keys, values, memory._n, kq[1])
            times[i] = time.perf_counter() - t0
        return times
    fast = memory._fast
    W, b = memory.W.numpy()[0], memory.b.numpy()[0]
    for i in range(window):
        t0 = time.perf_counter()
        _, err, _ = fast.read(W, b, kq, v, 0.5, 0.5)
        fast.write(W, b, kq[0], err, 0.5, 0.5)
        times[i] = time.perf_counter() - t0
    return times


def plot(result, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 4.5))
    colours = {'aura': 'tab:red', 'always_write': 'tab:blue', 'kv_cache': 'tab:gray'}
    for arm, stats in result['arms'].items():
        ax.errorbar(result['horizons'], stats['median_us'],
                    yerr=[np.zeros(len(stats['p99_us'])),
                          np.array(stats['p99_us']) - np.array(stats['median_us'])],
                    marker='o', capsize=3, color=colours[arm], label=f'{arm} (median, p99)')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('memory steps so far (horizon)')
    ax.set_ylabel('time per memory step (us)')
    r = result['ratios']['kv_over_aura'][-1]
    for arm, stats in result['arms'].items():
        ax.plot(result['horizons'], stats['core_median_us'], ls=':', marker='x',
                color=colours[arm], label=f'{arm}: memory operation only')
    rc = result['ratios']['kv_over_aura_core'][-1]
    ax.set_title(f"KV-cache / AURA at {result['horizons'][-1]:,} steps: {r:.0f}x (step), "
                 f"{rc:.0f}x (memory op)")
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(loc='center left', bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
