"""bench/README.md from the JSON results: every number quoted is read from bench/results/.

    python -m aura_ros.bench report --results bench/results --out bench/README.md
"""
import json
from pathlib import Path

PAPER = {
    'state_bytes': 4224, 'kv_100k_bytes': 25_600_000, 'kv_ratio': 6061,
    'hard_reduction': (5.19, 6.13), 'easy_reduction': 9.19, 'budget_controls': 0.366,
    'dense_gru_hard': 0.25, 'selectivity': 2.61, 'p_event': 0.829, 'p_distractor': 0.318,
    'robot_success': 0.233, 'robot_kv_success': 0.217, 'robot_reduction': 7.0,
    'robot_episodes': 60, 'robot_kv_bytes': 906_496,
}


def _load(folder, name):
    path = Path(folder) / name
    return json.loads(path.read_text()) if path.is_file() else None


def _ci(stats, key='accuracy'):
    lo, hi = stats[f'{key}_ci95']
    return f'{stats[key]:.3f} [{lo:.3f}, {hi:.3f}]'


def _x(value):
    return f'{value:.1f}x' if value else 'n/a'


def synthetic_section(data):
    lines = ['## Synthetic 8-way task (`synthetic.json`, `synthetic.png`)', '']
    settings = data.get('settings', {})
    lines += [f"Training steps per arm {settings.get('train_steps')}, batch "
              f"{settings.get('batch')}, {settings.get('eval_episodes')} evaluation episodes; "
              'accuracy at the query step, mean over seeds with a Student-t 95% interval over '
              'seeds; writes per episode; write reduction = always-write writes / arm writes.',
              '']
    for name, block in data['configs'].items():
        arms = block['arms']
        best = block['best_o1_arm']
        lines += [f"### {name} (N={block['task']['horizon']}, {block['seeds']} seeds; chance "
                  f"{block['chance']:.3f}; hand-coded reader that knows the generator: "
                  f"{block['task_ceiling_reader']:.3f})", '',
                  '| arm | accuracy [95% CI] | writes / episode | write reduction | state bytes |',
                  '|---|---|---|---|---|']
        for arm, stats in arms.items():
            mark = ' (best O(1) baseline)' if arm == best else ''
            lines.append(f"| {arm}{mark} | {_ci(stats)} | {stats['writes_per_episode']:.2f} | "
                         f"{_x(stats['write_reduction'])} | {stats['state_bytes']:,} |")
        p = block['gate_write_probability']
        parity = block['parity']
        lines += ['', f"- AURA vs best O(1) baseline ({best}): {parity['aura_accuracy']:.3f} vs "
                  f"CI [{parity['best_o1_ci95'][0]:.3f}, {parity['best_o1_ci95'][1]:.3f}] -> "
                  f"{'within or above' if parity['aura_within_or_above_best_ci'] else 'BELOW'}"
                  f" at {_x(parity['aura_write_reduction'])} fewer writes.",
                  f"- Budget-matched controls entirely below AURA's CI: "
                  f"{block['budget_controls_below_aura']}.",
                  f"- Gate write probability: events {p['event']:.3f}, repeats {p['repeat']:.3f}, "
                  f"distractors {p['distractor']:.4f}, background {p['background']:.4f}; "
                  f"selectivity {block['gate_selectivity']:.1f}x "
                  f"({block['gate_selectivity_note']}).", '']
    return lines


def main_table(results):
    syn = results.get('synthetic')
    sg = results.get('state_growth')
    cl = results.get('closed_loop')
    rows = ['| quantity | paper | aura_ros (this repo) |', '|---|---|---|']
    if sg:
        s = sg['summary']
        rows += [f"| state bytes, step 1 / step 100,000 | 4,224 / 4,224 | "
                 f"{s['aura_state_bytes_first']:,} / {s['aura_state_bytes_last']:,} |",
                 f"| KV-cache bytes at 100,000 steps (ratio) | 25,600,000 (6,061x) | "
                 f"{s['kv_state_bytes_last']:,} ({s['kv_over_aura']:,.0f}x) |"]
    if syn:
        for name, paper in (('hard', '5.19-6.13x at parity'), ('easy', '9.19x at parity')):
            if name in syn['configs']:
                b = syn['configs'][name]
                a = b['arms']['aura']
                best = b['arms'][b['best_o1_arm']]
                rows.append(f"| {name}: write reduction, AURA acc vs best O(1) | {paper} | "
                            f"{_x(a['write_reduction'])}, {a['accuracy']:.3f} vs "
                            f"{best['accuracy']:.3f} ({b['best_o1_arm']}) |")
                same = b['arms']['always_write']
                rows.append(f"| {name}: AURA acc vs always-write of the same memory | n/a | "
                            f"{a['accuracy']:.3f} vs {same['accuracy']:.3f} "
                            f"[{same['accuracy_ci95'][0]:.3f}, {same['accuracy_ci95'][1]:.3f}] |")
        if 'hard' in syn['configs']:
            b = syn['configs']['hard']['arms']
            rows.append(f"| hard: random / periodic budget-matched | ~0.366 | "
                        f"{b['random_budget']['accuracy']:.3f} / "
                        f"{b['periodic_budget']['accuracy']:.3f} |")
            rows.append(f"| hard: dense GRU | ~0.25 | {b['gru_dense']['accuracy']:.3f} |")
            g = syn['configs']['hard']
            rows.append(f"| gate selectivity (events / distractors) | 2.61x (0.829 / 0.318, 1 "
                        f"seed) | {g['gate_selectivity']:.1f}x "
                        f"({g['gate_write_probability']['event']:.3f} / "
                        f"{g['gate_write_probability']['distractor']:.4f}, {g['seeds']} seeds) |")
    if cl:
        a = cl['arms']
        rows.append(f"| closed loop: episodes per arm | 60 | {cl['episodes']} |")
        rows.append(f"| closed loop: success AURA / base / always-write | 0.233 / 0.233 / "
                    f"0.217 (parity) | {a['aura']['success']:.3f} / {a['base']['success']:.3f} / "
                    f"{a['always_write']['success']:.3f} |")
        rows.append(f"| closed loop: write reduction vs always-write | 7.0x | "
                    f"{_x(a['aura']['write_reduction'])} |")
        rows.append(f"| closed loop: KV-cache state (max) | 906,496 B | "
                    f"{a['kv_cache']['state_bytes_max']:,} B (AURA "
                    f"{a['aura']['state_bytes_max']:,} B) |")
    return rows


def closed_loop_section(cl):
    lines = ['## Closed loop on the simulated arm (`closed_loop.json`, `closed_loop.png`)', '',
             f"{cl['episodes']} episodes per arm and variant, the same seeds for every arm; "
             'success with a Wilson 95% interval.', '']
    for variant, block in cl['variants'].items():
        lines += [f'### {variant}', '',
                  '| arm | success [95% CI] | writes / episode | write reduction | '
                  'largest state (bytes) | write prob. cue / delay / distractor / go |',
                  '|---|---|---|---|---|---|']
        for arm, s in block.items():
            ph = s['write_probability_by_phase']
            phases = ' / '.join('-' if ph[k] is None else f'{ph[k]:.3f}'
                                for k in ('cue', 'delay', 'distractor', 'go'))
            lines.append(f"| {arm} | {_ci(s, 'success')} | {s['writes_per_episode']:.2f} | "
                         f"{_x(s['write_reduction'])} | {s['state_bytes_max']:,} | {phases} |")
        lines.append('')
    ros = cl.get('through_ros')
    if ros:
        lines += [f"Through the real nodes (sim_arm_node, perception_node, policy_node as "
                  f"separate processes, DDS, lockstep): {ros['episodes']} episodes, AURA success "
                  f"{_ci(ros, 'success')}, {ros['writes_per_episode']:.2f} writes per episode; "
                  f"agrees with the in-process run: {ros['agrees_with_in_process']}.", '']
    return lines


def perf_section(results):
    lines = []
    sc, lat, soak = results.get('step_cost'), results.get('latency'), results.get('soak')
    if sc:
        lines += ['## Step cost (`step_cost.json`, `step_cost.png`)', '',
                  '| horizon | ' + ' | '.join(f'{a} step median / p99 (us)' for a in sc['arms'])
                  + ' | ' + ' | '.join(f'{a} memory op (us)' for a in sc['arms']) + ' |',
                  '|---' * (1 + 2 * len(sc['arms'])) + '|']
        for i, h in enumerate(sc['horizons']):
            cells = [f"{s['median_us'][i]:.1f} / {s['p99_us'][i]:.1f}" for s in sc['arms'].values()]
            cells += [f"{s['core_median_us'][i]:.1f}" for s in sc['arms'].values()]
            lines.append(f'| {h:,} | ' + ' | '.join(cells) + ' |')
        r = sc['ratios']
        lines += ['', f"- AURA step at {sc['horizons'][-1]:,} / at {sc['horizons'][0]:,}: "
                  f"{r['aura_last_over_first']:.3f} "
                  f"(memory op: {r['aura_core_last_over_first']:.3f})",
                  f"- KV-cache / AURA at {sc['horizons'][-1]:,}: {r['kv_over_aura'][-1]:.1f}x "
                  f"(whole step), {r['kv_over_aura_core'][-1]:.1f}x (memory operation)", '']
    if lat:
        lines += ['## Latency through the nodes (`latency.json`, `latency.png`)', '',
                  f"Camera at {lat['camera_rate_hz']:.0f} Hz for {lat['seconds']:.0f} s: p50 "
                  f"{lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms camera -> command; "
                  f"{lat['rate_hz']:.1f} Hz commands sustained; step median "
                  f"{lat['step_ms_median']:.2f} ms (backbone {lat['backbone_ms_median']:.2f} ms, "
                  f"memory {lat['memory_ms_median']:.3f} ms = {100 * lat['memory_share']:.2f}% "
                  f"of the step), transport and queueing {lat['transport_and_queue_ms_median']:.2f}"
                  f" ms; stale frames used {lat['stale_frames']} (skipped because a newer one "
                  f"arrived: {lat['skipped_frames']}).", '']
    if soak:
        s = soak['summary']
        lines += ['## Soak (`soak.json`, `soak.png`)', '',
                  f"{s['steps']:,} policy steps in one never-reset episode "
                  f"({s['episodes_cycled']} sim scenes cycled, {s['writes']} writes): state bytes "
                  f"{s['state_bytes_unique']}; RSS growth after warm-up "
                  f"{s['rss_growth_after_warmup_bytes'] / 2**20:.2f} MiB (max above warm-up "
                  f"{s['rss_max_minus_warmup_bytes'] / 2**20:.2f} MiB); withheld commands "
                  f"{s['withheld_commands']}.", '']
    return lines


def render(folder):
    results = {name: _load(folder, f'{name}.json') for name in
               ('synthetic', 'state_growth', 'closed_loop', 'step_cost', 'latency', 'soak')}
    lines = ['# Benchmarks', '',
             'Generated by `python -m aura_ros.bench report` from the JSON files in '
             '`bench/results/` (each written by the command in the top-level README). Machine: '
             '2 CPU cores, no GPU; timings are medians measured in one run.', '',
             '## Side by side with the paper', ''] + main_table(results) + ['']
    if results['synthetic']:
        lines += synthetic_section(results['synthetic'])
    if results['state_growth']:
        s = results['state_growth']['summary']
        lines += ['## State growth (`state_growth.json`, `state_growth.png`)', '',
                  f"Read from the live objects: AURA {s['aura_state_bytes_first']:,} B at step 1 "
                  f"and {s['aura_state_bytes_last']:,} B at step {s['steps']:,}; KV-cache "
                  f"{s['kv_state_bytes_last']:,} B ({s['kv_over_aura']:,.0f}x).", '']
    if results['closed_loop']:
        lines += closed_loop_section(results['closed_loop'])
    lines += perf_section(results)
    return '\n'.join(lines).rstrip() + '\n'


def write(folder, out, notes=''):
    text = render(folder)
    if notes:
        text += '\n' + notes.strip() + '\n'
    Path(out).write_text(text)
    return text
