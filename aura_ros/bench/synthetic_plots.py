"""The synthetic benchmark's figures (bench/synthetic.py's results): kept apart from the code
that computes the results, whose digest keys the result cache (a figure change recomputes
nothing)."""
import numpy as np

from aura_ros.bench.synthetic import GATE_ARMS


def plot(result, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = list(result['configs'])
    fig, axes = plt.subplots(4, len(names), figsize=(7 * len(names), 15), squeeze=False)
    for col, name in enumerate(names):
        block = result['configs'][name]
        arms = list(block['arms'])
        acc = [block['arms'][a]['accuracy'] for a in arms]
        lo = [a - block['arms'][n]['accuracy_ci95'][0] for a, n in zip(acc, arms)]
        hi = [block['arms'][n]['accuracy_ci95'][1] - a for a, n in zip(acc, arms)]
        colors = ['tab:red' if a == 'aura' else 'tab:orange' if a in GATE_ARMS else
                  'tab:gray' if a == 'kv_cache' else 'tab:blue' for a in arms]
        ax = axes[0, col]
        ax.bar(arms, acc, yerr=[lo, hi], color=colors, capsize=3)
        ax.axhline(block['chance'], ls=':', c='k', label='chance')
        ax.axhline(block['task_ceiling_reader'], ls='--', c='g', label='hand-coded reader')
        ax.set_title(f"{name}: accuracy at the query ({block['seeds']} seeds, 95% CI)")
        ax.set_ylim(0, 1.05)
        ax.tick_params(axis='x', rotation=45)
        ax.legend(loc='lower left', fontsize=8)
        ax = axes[1, col]
        ax.bar(arms, [max(block['arms'][a]['writes_per_episode'], 1e-2) for a in arms],
               color=colors)
        ax.set_yscale('log')
        ax.set_ylabel('writes per episode (log)')
        ax.tick_params(axis='x', rotation=45)
        red = block['arms']['aura']['write_reduction']
        ax.set_title(f'writes: AURA {red:.1f}x fewer than always-write' if red else 'writes')
        ax = axes[2, col]
        kinds = [k for k in ('event', 'repeat', 'distractor', 'context', 'background')
                 if block['write_probability']['aura'].get(k) is not None]
        width = 0.8 / len(GATE_ARMS)
        for i, arm in enumerate(GATE_ARMS):
            prob = block['write_probability'][arm]
            ps = [prob[k] for k in kinds]
            err = [[p - prob['ci95'][k][0] for p, k in zip(ps, kinds)],
                   [prob['ci95'][k][1] - p for p, k in zip(ps, kinds)]]
            ax.bar(np.arange(len(kinds)) + (i - 1) * width, ps, width, yerr=err, capsize=2,
                   label=arm, color=['tab:red', 'tab:orange', 'tab:purple'][i])
        ax.set_xticks(np.arange(len(kinds)), kinds)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel('write probability (pooled, Wilson 95%)')
        ax.set_title(f'{name}: when each gate writes')
        ax.legend(fontsize=8)
        parity_panel(axes[3, col], name, block)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parity_panel(ax, name, block):
    """AURA's accuracy against writes per episode (run-time threshold swept, intervals over
    seeds) beside the best O(1) baseline's interval and always-write."""
    curve = block.get('parity_curve')
    if not curve:
        ax.set_axis_off()
        return
    writes = np.array(curve['writes_per_episode'])
    acc = np.array(curve['accuracy'])
    ci = np.array(curve['accuracy_ci95'])
    keep = writes > 0
    ax.errorbar(writes[keep], acc[keep], yerr=[acc[keep] - ci[keep, 0], ci[keep, 1] - acc[keep]],
                fmt='o-', c='tab:red', capsize=2, label='aura, threshold swept')
    for w, a, t in zip(writes[keep], acc[keep], np.array(curve['thresholds'])[keep]):
        ax.annotate(f'{t:g}', (w, a), textcoords='offset points', xytext=(3, -10), fontsize=7)
    lo, hi = curve['best_o1_ci95']
    best = block['best_o1_arm']
    ax.axhspan(lo, hi, color='tab:blue', alpha=0.2, label=f'{best} (best O(1)), 95% CI')
    always = block['arms']['always_write']
    ax.plot([always['writes_per_episode']], [always['accuracy']], 's', c='tab:blue',
            label='always-write')
    ax.set_xscale('log')
    ax.set_xlabel('writes per episode (log)')
    ax.set_ylabel('accuracy at the query')
    red = curve['largest_write_reduction_at_parity']
    ax.set_title(f'{name}: parity curve (' + (f'parity up to {red:.1f}x fewer writes than '
                 f'always-write)' if red else 'no point at parity)'))
    ax.legend(fontsize=8, loc='lower right')


def plot_threshold_sweep(result, path):
    """Accuracy against writes per episode (one point per threshold) and write probability per
    item kind against the threshold, evaluation episodes."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = result['thresholds']
    ev = [r['evaluation'] for r in rows]
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(12, 4.5))
    a0.plot([e['writes_per_episode'] for e in ev], [e['accuracy'] for e in ev], 'o-', c='tab:red')
    for r, e in zip(rows, ev):
        a0.annotate(f"{r['threshold']:g}", (e['writes_per_episode'], e['accuracy']),
                    textcoords='offset points', xytext=(4, 4), fontsize=8)
    a0.set_xlabel('writes per episode')
    a0.set_ylabel('accuracy at the query')
    a0.set_title(f"{result['config']} seed {result['seed']} {result['arm']}: threshold sweep")
    for kind in ('event', 'repeat', 'distractor', 'background'):
        a1.plot([r['threshold'] for r in rows], [e['write_probability'][kind] for e in ev],
                'o-', label=kind)
    a1.set_xscale('log')
    a1.set_xlabel('gate threshold (trained at 0.5)')
    a1.set_ylabel('write probability')
    a1.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
