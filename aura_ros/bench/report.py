"""bench/README.md from the JSON results: every number quoted is read from bench/results/.

    python -m aura_ros.bench report --results bench/results --out bench/README.md
"""
import json
from pathlib import Path


def _load(folder, name):
    path = Path(folder) / name
    return json.loads(path.read_text()) if path.is_file() else None


def _ci(stats, key='accuracy'):
    lo, hi = stats[f'{key}_ci95']
    return f'{stats[key]:.3f} [{lo:.3f}, {hi:.3f}]'


def _x(value):
    return f'{value:.1f}x' if value else 'n/a'


def _p(prob, kind):
    """'p [lo, hi] (writes/steps)' for one item kind of a write_probability block."""
    if prob.get(kind) is None:
        return '-'
    c, (lo, hi) = prob['counts'][kind], prob['ci95'][kind]
    return f"{prob[kind]:.3f} [{lo:.3f}, {hi:.3f}] ({c['writes']:,}/{c['steps']:,})"


def synthetic_section(data):
    lines = ['## Synthetic 8-way task (`synthetic.json`, `synthetic.png`)', '']
    settings = data.get('settings', {})
    budgets = {name: (settings.get('train_steps') or {}).get(name) for name in data['configs']}
    lines += [f"Training steps per arm (every arm the same) {budgets}, batch "
              f"{settings.get('batch')}, {settings.get('eval_episodes')} evaluation episodes; "
              'accuracy at the query step, mean over seeds with a Student-t 95% interval over '
              'seeds; writes per episode; write reduction = always-write writes / arm writes. '
              'Write probabilities are pooled over seeds: p [Wilson 95% CI] (writes / steps).',
              '']
    for name, block in data['configs'].items():
        arms, task = block['arms'], block['task']
        best = block['best_o1_arm']
        lines += [f"### {name}: {task.get('task', '')} (N={task['horizon']}, {block['seeds']} "
                  f"seeds; chance {block['chance']:.3f}; hand-coded reader that knows the "
                  f"generator: {block['task_ceiling_reader']:.3f}; label channel: "
                  f"{'yes' if task.get('label_channel') else 'no'})", '',
                  '| arm | training steps | accuracy [95% CI] | writes / episode | write '
                  'reduction vs always-write | state bytes | gate at evaluation |',
                  '|---|---|---|---|---|---|---|']
        for arm, stats in arms.items():
            mark = ' (best O(1) baseline)' if arm == best else ''
            status = stats.get('gate_status')
            status = ', '.join(f'{status.count(v)} {v}' for v in sorted(set(status))) \
                if status else '-'
            steps = stats.get('training_steps', budgets.get(name))
            lines.append(f"| {arm}{mark} | {steps} | {_ci(stats)} | "
                         f"{stats['writes_per_episode']:.2f} | "
                         f"{_x(stats['write_reduction'])} | {stats['state_bytes']:,} | "
                         f"{status} |")
        kinds = [k for k in ('event', 'repeat', 'distractor', 'context', 'background')
                 if block['write_probability']['aura'].get(k) is not None]
        lines += ['', 'Write probability per item kind:', '',
                  '| arm | ' + ' | '.join(kinds) + ' |', '|---' * (1 + len(kinds)) + '|']
        for arm, prob in block['write_probability'].items():
            lines.append(f'| {arm} | ' + ' | '.join(_p(prob, k) for k in kinds) + ' |')
        abl = block.get('gate_input_ablation', {})
        if abl:
            lines += ['', 'The trained `aura` gate evaluated with one input replaced (the '
                      'ablations that could falsify "it writes on surprise"): by its mean over '
                      'calibration episodes (no information), or by the value another '
                      '(calibration) episode had at the same step (same distribution and time '
                      "course, no link to this episode's content):", '',
                      '| aura gate input replaced | accuracy | writes / episode | '
                      + ' | '.join(kinds[:3]) + ' |', '|---' * 6 + '|',
                      f"| none (as trained) | {_ci(arms['aura'])} | "
                      f"{arms['aura']['writes_per_episode']:.2f} | "
                      + ' | '.join(_p(block['write_probability']['aura'], k) for k in kinds[:3])
                      + ' |']
            for key, label in (('state', 'surprise + action change, at the mean'),
                               ('state_shuffled', "surprise + action change, another "
                                                  "episode's"),
                               ('features', 'features, at the mean'),
                               ('features_shuffled', "features, another episode's")):
                if key not in abl:
                    continue
                a = abl[key]
                lines.append(f"| {label} | {_ci(a)} | {a['writes_per_episode']:.2f} | "
                             + ' | '.join(_p(a['write_probability'], k) for k in kinds[:3])
                             + ' |')
        curve = block.get('parity_curve')
        if curve:
            lo = curve['best_o1_ci95'][0]
            lines += ['', f"Parity curve: the trained `aura` gate at each run-time threshold "
                      f"(trained at 0.5) on the evaluation episodes, beside the best O(1) "
                      f"baseline ({best}, CI [{lo:.3f}, {curve['best_o1_ci95'][1]:.3f}]); "
                      f"intervals overlap = AURA's interval overlaps or lies above it:", '',
                      '| threshold | writes / episode | write reduction vs always-write | '
                      f'vs {best} | accuracy [95% CI] | intervals overlap |',
                      '|---|---|---|---|---|---|']
            vs_best = curve.get('write_reduction_vs_best_o1') or [None] * len(curve['thresholds'])
            for i, t in enumerate(curve['thresholds']):
                a_lo, a_hi = curve['accuracy_ci95'][i]
                lines.append(f"| {t:g} | {curve['writes_per_episode'][i]:.2f} | "
                             f"{_x(curve['write_reduction'][i])} | {_x(vs_best[i])} | "
                             f"{curve['accuracy'][i]:.3f} [{a_lo:.3f}, {a_hi:.3f}] | "
                             f"{'yes' if curve['at_parity'][i] else 'no'} |")
            lines += ['', f"Largest write reduction at parity on the curve: "
                      f"{_x(curve['largest_write_reduction_at_parity'])}."]
        parity, sp = block['parity'], block['surprise_path']
        keeps = sp['surprise_only_keeps_write_reduction']
        lines += ['', f"- Parity with the best O(1) baseline ({best}, CI "
                  f"[{parity['best_o1_ci95'][0]:.3f}, {parity['best_o1_ci95'][1]:.3f}]): AURA "
                  f"{parity['aura_accuracy']:.3f} -> "
                  f"{'within or above' if parity['aura_within_or_above_best_ci'] else 'BELOW'}; "
                  f"writes {_x(parity['write_reduction_vs_best_o1'])} fewer than {best} "
                  f"(the paper's measure; "
                  f"{'at parity' if parity['write_reduction_at_parity'] else 'not at parity'})"
                  f", {_x(parity['write_reduction_vs_always_write'])} fewer than always-write.",
                  f"- Surprise path: `aura_surprise_only` keeps "
                  f"{'n/a' if keeps is None else f'{100 * keeps:.0f}%'} of AURA's write "
                  f"reduction; its accuracy is within or above AURA's CI: "
                  f"{sp['surprise_only_accuracy_within_aura_ci']}. Repeat / distractor write "
                  f"probability <= 0.25 x event: {sp['selective']}.",
                  f"- Budget-matched controls entirely below AURA's CI: "
                  f"{block['budget_controls_below_aura']}.", '']
    if data.get('variants'):
        lines += variants_section(data['variants'])
    return lines


def variants_section(variants):
    lines = ['### Task variants no setting was chosen on (the recipe unchanged)', '',
             'Each variant changes the horizon, the item mix, the noise and amplitude range and '
             'the order of every channel; aura and always-write (the same memory) trained at '
             "the full and at 40% of their task's budget, no curriculum. Collapsed = fewer than "
             '0.1 writes per episode, or writes on more than 50% of steps (on the evaluation '
             'episodes).', '',
             '| variant | training steps | seeds | aura | always-write | aura - always-write '
             '| aura writes / episode | gate | event / repeat / distractor p(write) |',
             '|---|---|---|---|---|---|---|---|---|']
    for name, v in variants.items():
        task = v['task']
        label = (f"{name} (N={task['horizon']}, events {tuple(task['events'])}, repeats "
                 f"{tuple(task['repeats'])}, distractors {tuple(task['distractors'])}, noise "
                 f"{task['content_noise']})")
        for b in v['budgets'].values():
            wp = b['write_probability']
            probs = ' / '.join('-' if wp.get(k) is None else f'{wp[k]:.2f}'
                               for k in ('event', 'repeat', 'distractor'))
            lines.append(f"| {label} | {b['training_steps']} | {b['seeds']} | "
                         f"{b['aura_accuracy']:.3f} | {b['always_write_accuracy']:.3f} | "
                         f"{b['aura_minus_always_write']:+.3f} | "
                         f"{b['aura_writes_per_episode']:.2f} | {', '.join(b['gate_status'])} "
                         f"| {probs} |")
    return lines + ['']


def main_table(results):
    syn = results.get('synthetic')
    sg = results.get('state_growth')
    cl = results.get('closed_loop')
    rows = ['Each row quotes the paper\'s number with the paper\'s label and puts our arm with '
            'the same meaning next to it.', '',
            '| quantity (as the paper labels it) | paper | aura_ros (this repo) |',
            '|---|---|---|']
    if sg:
        s = sg['summary']
        rows += [f"| inference state, step 1 / step 100,000 | 4,224 B / 4,224 B | "
                 f"{s['aura_state_bytes_first']:,} B / {s['aura_state_bytes_last']:,} B |",
                 f"| same-dimension KV-cache at 100,000 steps (ratio) | 25,600,000 B (6,061x) | "
                 f"{s['kv_state_bytes_last']:,} B ({s['kv_over_aura']:,.0f}x) |"]
    if syn:
        for name, paper in (('hard', '5.19-6.13x at parity'),
                            ('easy', 'up to 9.19x at parity (near saturation)')):
            if name not in syn['configs']:
                continue
            b = syn['configs'][name]
            par = b['parity']
            ours = (f"{_x(par['write_reduction_at_parity'])} at parity with {b['best_o1_arm']}"
                    if par['write_reduction_at_parity'] else
                    f"no parity: {par['aura_accuracy']:.3f} vs {b['best_o1_arm']} CI "
                    f"[{par['best_o1_ci95'][0]:.3f}, {par['best_o1_ci95'][1]:.3f}] "
                    f"({_x(par['write_reduction_vs_best_o1'])} fewer writes)")
            rows.append(f"| {name}: fewer writes than the best O(1) baseline, at parity | "
                        f"{paper} | {ours} |")
            if 'meets_target' in par:
                rows.append(f"| {name}: AURA's 95% interval overlaps or lies above the best O(1) "
                            f"baseline's (trained threshold) | - | "
                            f"{'yes' if par['aura_ci_overlaps_or_above_best_ci'] else 'no'}, "
                            f"at {_x(par['write_reduction_vs_always_write'])} fewer writes than "
                            f"always-write (issue 31's target: >= "
                            f"{par['target_write_reduction']}x; met: "
                            f"{'yes' if par['meets_target'] else 'no'}) |")
            curve = b.get('parity_curve')
            if curve:
                rows.append(f"| {name}: largest write reduction vs always-write with the "
                            f"intervals overlapping, run-time threshold swept | - | "
                            f"{_x(curve['largest_write_reduction_at_parity'])} ({b['seeds']} "
                            f"seeds; the best of {len(curve['thresholds'])} thresholds on the "
                            f"evaluation episodes, so optimistic; the curve below) |")
        if 'hard' in syn['configs']:
            b = syn['configs']['hard']
            a = b['arms']
            rows.append(f"| hard: budget-matched random / periodic writes | ~0.366 | "
                        f"{a['random_budget']['accuracy']:.3f} / "
                        f"{a['periodic_budget']['accuracy']:.3f} |")
            rows.append(f"| hard: dense GRU writing every step | ~0.25 | "
                        f"{a['gru_dense']['accuracy']:.3f} |")
            p = b['write_probability']['aura']
            rows.append(f"| gate write probability, real events vs distractors | 0.829 vs 0.318 "
                        f"(2.61x, 1 seed) | {_p(p, 'event')} vs {_p(p, 'distractor')} "
                        f"({b['seeds']} seeds, hard); repeats {_p(p, 'repeat')} |")
    if cl:
        block = cl['variants'].get('plain', {})
        a = block.get('arms', {})
        rows.append(f"| closed loop: episodes per arm | 60 | {cl['episodes']} (per variant) |")
        if {'aura', 'base', 'kv_cache'} <= set(a):
            rows.append(f"| closed loop: success AURA / ungated base / always-write KV residual "
                        f"| 0.233 / 0.233 / 0.217 (claim: parity) | {a['aura']['success']:.3f} "
                        f"/ {a['base']['success']:.3f} / {a['kv_cache']['success']:.3f} (task "
                        f"v2, plain; our claim: AURA above the memoryless arms and the write "
                        f"clocks, see below) |")
            kv_w, aura_w = a['kv_cache']['writes_per_episode'], a['aura']['writes_per_episode']
            rows.append(f"| closed loop: writes AURA vs the KV arm | 504 vs 3,541 (7.0x) | "
                        f"{aura_w:.2f} vs {kv_w:.2f} per episode "
                        f"({_x(kv_w / aura_w if aura_w else None)}) |")
            rows.append(f"| closed loop: KV arm state (max) | 906,496 B | "
                        f"{a['kv_cache']['state_bytes_max']:,} B (AURA "
                        f"{a['aura']['state_bytes_max']:,} B) |")
    return rows


KIND_ORDER = ('cue_onset', 'switch_cue', 'reshown_cue', 'cue_continued', 'distractor',
              'pre_cue', 'delay', 'go')


def _wp(stats, kind):
    w = stats['write_probability'][kind]
    return '-' if w['p'] is None else f"{w['p']:.2f} ({w['writes']}/{w['frames']})"


def closed_loop_section(cl, robot='the planar arm', files='`closed_loop.json`, '
                        '`closed_loop.png`'):
    """Task v2 (sim/arm.py), every arm, per-kind write probabilities, the gate ablation."""
    lines = [f'## Closed loop on {robot}, task v2 ({files})', '',
             f"{cl['episodes']} lockstep episodes per arm and variant (seeds "
             f"{cl.get('first_seed', 500000)}...), the same seeds for every arm (scene, chunk "
             'noise per episode and step, write schedules); success with a Wilson 95% interval; '
             'write probability per ground-truth frame kind: p (writes/frames). `first_frame`, '
             '`pixel_change` and `cue_oracle` run AURA\'s trained memory with their writes '
             'forced: they differ from `aura` only in when they write. The checkpoints are the '
             'shipped ones (`' + str(cl.get('checkpoint', '')) + '` and its siblings, sha256 '
             'in the JSON; '
             '`test/bench/test_closed_loop.py` replays episodes of each and checks the stored '
             'outcomes and write steps).', '']
    for key, block in cl['variants'].items():
        lines += [f"### {key} (`{block['variant']}`)", '',
                  '| arm | success [95% CI] | writes / episode | write reduction | largest '
                  'state (B) | ' + ' | '.join(KIND_ORDER) + ' |',
                  '|---|---|---|---|---|' + '---|' * len(KIND_ORDER)]
        rows = list(block['arms'].items()) + [(f'aura, {name.replace("_", " ")}', st) for
                                             name, st in block.get('ablation', {}).items()]
        for arm, st in rows:
            lines.append(f"| {arm} | {_ci(st, 'success')} | {st['writes_per_episode']:.2f} | "
                         f"{_x(st.get('write_reduction'))} | {st['state_bytes_max']:,} | "
                         + ' | '.join(_wp(st, k) for k in KIND_ORDER) + ' |')
        cal = block.get('calibration')
        if cal:
            lines += ['', f"Calibration ({cal['episodes']} episodes on other seeds, AURA "
                      f"driving): {cal['aura_writes_per_episode']:.2f} writes per episode; the "
                      f"pixel-change threshold for that budget {cal['pixel_change_threshold']:.2f}"
                      f" (mean absolute pixel change, 0-255); the ablation's inputs recorded "
                      f"there."]
        need = block.get('cue_onset_writes_by_need')
        if need:
            skipped = block['arms']['aura'].get('cue_onset_skipped')
            tail = (f"; cue onsets AURA skipped: {skipped['episodes']}, of which "
                    f"{skipped['successes']} episodes succeeded anyway." if skipped else '.')
            lines += ['', 'AURA on cue onsets, by need (an episode needs the memory where '
                      '`no_memory`, the same head without memory, failed on that seed): '
                      + '; '.join(f"{k.replace('_', ' ')} {_wp({'write_probability': need}, k)}"
                                  for k in ('needed', 'not_needed')) + tail]
        t = block.get('targets', {})
        if t:
            above = t.get('aura_above', {})
            lines += ['', 'Targets: AURA\'s lower bound above the upper bound of '
                      + ', '.join(f'{arm} {"yes" if v else "no"}' for arm, v in above.items())
                      + f"; within or above `cue_oracle`: "
                      f"{t.get('aura_within_or_above_cue_oracle')}; write probabilities in "
                      f"bounds: " + ', '.join(f'{k} {v}' for k, v in
                                            t.get('write_probability', {}).items())
                      + f"; write reduction >= 7x: {t.get('write_reduction_at_least_7x')}; "
                      f"with shuffled surprise AURA falls to no_memory or writes cues no more "
                      f"than distractors: {t.get('surprise_shuffled_loses_it')}; with shuffled "
                      f"features cue-onset writes stay >= 0.8: "
                      f"{t.get('features_shuffled_keeps_cue_writes')}."]
        lines.append('')
    ros = cl.get('through_ros')
    if ros:
        lines += [f"Through the real nodes (sim_arm_node, perception_node, policy_node as "
                  f"separate processes, DDS, lockstep): {ros['episodes']} episodes, AURA success "
                  f"{_ci(ros, 'success')}, {ros['writes_per_episode']:.2f} writes per episode; "
                  f"agrees with the in-process run: {ros['agrees_with_in_process']}.", '']
    for key, rt in (cl.get('realtime') or {}).items():
        how = (', the policy in `execution: async` at 100 Hz as on a robot'
               if rt.get('execution') == 'async' else '')
        lines += [f"Real time, {key}: the same nodes with the sim on the wall clock (30 fps "
                  f"whatever the policy does, `lockstep: false`{how}), {rt['episodes']} "
                  f"episodes: "
                  f"AURA success {_ci(rt, 'success')}, {rt['writes_per_episode']:.2f} writes "
                  f"per episode (in process, lockstep: "
                  f"{_ci(cl['variants'][key]['arms']['aura'], 'success')}).", '']
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


def realtime_section(rt, title='## Real-time control under inference latency (`realtime.json`, '
                     '`realtime.png`)'):
    """Sync vs async under injected latency: one table per measure, a row per mode."""
    lat = rt['latencies_ms']
    task = rt['settings']['task']
    where = ('The arm runs in a process of its own' if rt['settings'].get('sim_process')
             else 'The arm runs in a thread of the policy process')
    priority = rt['settings'].get('control_priority')
    scheduler = (f'the control thread asks for SCHED_FIFO {priority}' if priority
                 else 'the control thread runs at the normal scheduler')
    lines = [title, '',
             f"The arm in real time (physics {rt['settings']['physics_rate']:.0f} Hz, joint "
             f"states {rt['settings']['joint_state_rate']:.0f} Hz, camera "
             f"{task['frame_rate']:.0f} Hz), memory variant timed in seconds: cue "
             f"{task['cue_s']} s, delay {task['delay_s'][0]}-{task['delay_s'][1]} s, go timeout "
             f"{task['go_timeout_s']} s, dwell {task['dwell_s']} s. {rt['episodes']} episodes "
             f"per point, the same seeds everywhere; async control at "
             f"{rt['control_rate_target_hz']:.0f} Hz. Injected latency is added to every "
             f"observation the backbone encodes. {where}; {scheduler}.", '']
    head = '| mode | ' + ' | '.join(f'{x} ms' for x in lat) + ' |'
    rule = '|---' * (1 + len(lat)) + '|'
    measures = (
        ('success (Wilson 95%)', lambda b, i: f"{b['success'][i]:.2f} "
         f"[{b['success_ci95'][i][0]:.2f}, {b['success_ci95'][i][1]:.2f}]"),
        ('commands per second', lambda b, i: f"{b['control_rate_hz'][i]:.1f}"),
        ('p99 period jitter (ms)', lambda b, i: f"{b['period_jitter_p99_ms'][i]:.1f}"),
        ('episodes without host CPU steal: commands per second, p99 jitter (ms), episodes',
         lambda b, i: (f"{b['control_rate_hz_steal_free'][i]:.1f}, "
                       f"{b['period_jitter_p99_ms_steal_free'][i]:.1f}, "
                       f"{b['steal_free_episodes'][i]}"
                       if (b.get('period_jitter_p99_ms_steal_free') or [None] * len(lat))[i]
                       is not None else '-')),
        ('host CPU steal, share of the point\'s CPU time',
         lambda b, i: (f"{b['steal_share'][i]:.3f}"
                       if (b.get('steal_share') or [None] * len(lat))[i] is not None
                       else '-')),
        ('p99 / max joint step between commands (rad)',
         lambda b, i: f"{b['joint_step_p99'][i]:.3f} / {b['joint_step_max'][i]:.3f}"),
        ('p99 / max requested joint step: the chunk executor before the limits (rad)',
         lambda b, i: (f"{b['target_step_p99'][i]:.3f} / {b['target_step_max'][i]:.3f}"
                       if (b.get('target_step_p99') or [None] * len(lat))[i] is not None
                       else '-')),
        ('p99 command jerk (rad/s^3)', lambda b, i: f"{b['jerk_p99'][i]:.3g}"),
        ('p99 arm jerk, joint samples at 100 Hz (rad/s^3)',
         lambda b, i: f"{b['arm_jerk_p99'][i]:.3g}"),
        ('chunk age at the command, p50 / p99 (ms)',
         lambda b, i: f"{b['chunk_age_ms_p50'][i]:.0f} / {b['chunk_age_ms_p99'][i]:.0f}"),
        ('writes per episode', lambda b, i: f"{b['writes_per_episode'][i]:.2f}"),
        ('CPU share: inference / control / sim', lambda b, i: ' / '.join(
            f"{b['cpu_share'][i].get(k, 0.0):.2f}" for k in ('inference', 'control', 'sim'))))
    for title, cell in measures:
        lines += [f'**{title}**', '', head, rule]
        for mode, block in rt['modes'].items():
            lines.append(f'| {mode} | ' + ' | '.join(cell(block, i) for i in range(len(lat)))
                         + ' |')
        lines.append('')
    t = rt.get('targets', {})
    if 'best_async_mode' in t:
        best = t['best_async_mode']
        lines += [f"- Best async mode at 200 ms: {best}, keeping "
                  f"{100 * (t['async_kept_at_200ms'][best] or 0):.0f}% of its 0 ms success "
                  f"(target >= 90%: {t['best_async_keeps_90pct_at_200ms']}); sync keeps "
                  f"{100 * t.get('sync_kept_at_200ms', 0):.0f}%."]
    refused = sorted({x for b in rt['modes'].values() for x in b.get('control_scheduler') or []
                      if x and 'refused' in x})
    if refused:
        lines += [f"- The control thread did not get its priority: {refused[0]}."]
    for peer, c in (t.get('peers') or {}).items():
        lines += [f"- Against the peers' handover `{peer}` (success {c['success']}): ours "
                  f"(the node's default transition, fixed before the run) {c['best_ours']}, "
                  f"success {c['best_ours_success']}; at "
                  f"least as successful: {c['ours_at_least_as_successful']}, Wilson intervals "
                  f"above: {c['ours_above_ci']}, below: {c['ours_below_ci']}; smoother than it "
                  f"({c['smoother_than_peer_by']}): {c['smoother_than_peer']}."]
    lines += [f"- Control rate within 2% of the target, per latency: "
              f"{t.get('control_rate_within_2pct')}; p99 jitter <= 5 ms: "
              f"{t.get('jitter_p99_at_most_5ms')}; the same over episodes without host CPU "
              f"steal: {t.get('control_rate_within_2pct_steal_free')}, "
              f"{t.get('jitter_p99_at_most_5ms_steal_free')}; smoother than `latest` "
              f"({t.get('smoother_than_latest_by', 'joint_step_p99 and jerk_p99')}): "
              f"{t.get('smoother_than_latest')}.", '']
    return lines


def recordings_section(tf):
    """The learning curve from recordings (bench/train_from_recordings.py): the planar arm's
    and, when run, the MuJoCo SO-101's (under ``"mujoco"``)."""
    if 'curve' not in tf and 'mujoco' not in tf:       # the earlier single-point format
        return []
    lines = ['## Trained from recordings: the learning curve (`train_from_recordings.json`, '
             '`train_from_recordings.png`)', '']
    if 'curve' in tf:
        lines += _curve_lines(tf)
    if 'mujoco' in tf:
        lines += ['### The SO-101 in MuJoCo (`"mujoco"`, `train_from_recordings_mujoco.png`)',
                  ''] + _curve_lines(tf['mujoco'])
    return lines


def _curve_lines(tf):
    base = tf['references']['base']
    lines = [f"Teleoperated episodes recorded through ROS ({tf['engine']}, task {tf['task']}; "
             f"operator noise {tf['teleop_noise']}), every arm trained on the first N of them "
             f"({tf['steps']} steps), evaluated in closed loop on {tf['eval_episodes']} episodes "
             f"(lockstep, the closed-loop benchmark's seeds). Base (frozen policy): "
             f"{_ci(base, 'success')}.", '']
    arms = list(next(iter(tf['curve'].values()))['arms'])
    lines += ['| episodes | ' + ' | '.join(arms) + ' | train s (aura + no_memory) |',
              '|---' * (len(arms) + 2) + '|']
    for n, point in tf['curve'].items():
        cells = [f"{_ci(point['arms'][a], 'success')}, {point['arms'][a]['writes_per_episode']:.2f}"
                 f' w/ep' for a in arms]
        lines.append(f'| {n} | ' + ' | '.join(cells) +
                     f" | {point['train_seconds_aura_no_memory']:.0f} |")
    lines += ['']
    for n, point in tf['curve'].items():
        met = ', '.join(f'{k}: {v}' for k, v in point['targets'].items())
        lines.append(f'- {n} episodes: {met}')
    return lines + ['']


def backbone_server_section(bs):
    """The gRPC backbone server under 1-16 arms, batching on and off."""
    b, u = bs['batched'], bs['unbatched']
    lines = ['## Backbone server (`backbone_server.json`, `backbone_server.png`)', '',
             f"`python -m aura_ros.backbones.server` serving the tiny PI0 (config/default.yaml) "
             f"with {bs['server_threads']} torch thread(s) to 1-16 simulated arms "
             f"({bs['arms']}: one request in flight each, features + chunk, at up to "
             f"{bs['rate_hz']:g} Hz) on the same 2 cores; batches of up to {bs['max_batch']} "
             f"with a {bs['max_wait_ms']:g} ms wait against `--max-batch 1` (one request at a "
             f"time, as the retired TCP server). Medians of {bs['repeats']} runs of "
             f"{bs['seconds']:g} s per point, batched and unbatched interleaved.", '',
             '| arms | batched answers/s | unbatched answers/s | ratio (paired runs) | '
             'batched p50 / p99 ms | unbatched p50 / p99 ms | mean batch |',
             '|---|---|---|---|---|---|---|']
    runs = bs['throughput_ratio_runs']
    for i, n in enumerate(bs['clients']):
        ratio = bs['throughput_ratio'][i]
        spread = f" [{min(runs[i]):.2f}-{max(runs[i]):.2f}]" if len(runs[i]) > 1 else ''
        lines.append(f"| {n} | {b['throughput'][i]:.0f} | {u['throughput'][i]:.0f} | "
                     f"{ratio:.2f}x{spread} | {b['p50_ms'][i]:.0f} / {b['p99_ms'][i]:.0f} | "
                     f"{u['p50_ms'][i]:.0f} / {u['p99_ms'][i]:.0f} | {b['mean_batch'][i]:.1f} |")
    t = bs['targets']
    lines += ['']
    if 'throughput_ratio_at_8' in t:
        lines.append(f"Target at 8 arms, batched >= 3x unbatched: "
                     f"{t['throughput_ratio_at_8']:.2f}x ({t['throughput_3x_at_8']}); p99 below "
                     f"unbatched: {t['p99_below_unbatched_at_8']}.")
    if 'p99_at_1_ms' in t:
        p = t['p99_at_1_ms']
        lines.append(f"Target at 1 arm, batched p99 within max-wait + 10% of unbatched: "
                     f"{p['batched']:.1f} ms against a bound of {p['bound']:.1f} ms "
                     f"({t['p99_at_1_within_wait_plus_10pct']}).")
    return lines + ['']


def mujoco_section(mj):
    """The whole user path on the SO-101 in MuJoCo, closed loop in real time."""
    rec, train, settings = mj['record'], mj['train'], mj['settings']
    lines = ['## SO-101 in MuJoCo, the whole user path (`mujoco.json`, `mujoco.png`, '
             '`mujoco_episode.gif`)', '',
             f"The tiny PI0 trained on the visible variant ({mj['backbone']['demos']} "
             f"demonstrations, {mj['backbone']['steps']} steps); {rec['episodes']} teleoperated "
             f"episodes recorded through the nodes in real time (`sim_teleop` + "
             f"`episode_recorder`, operator noise {rec.get('teleop_noise', 0.3):g}; "
             f"demonstrations succeeded in {rec['demonstration_success']:.3f}); `train "
             f"episodes` on that bag "
             f"({train['frames_labelled']:,} of {train['frames']:,} frames labelled); the "
             f"printed lines deployed by parameter file. Closed loop: the arm on the wall clock "
             f"in a process of its own (MuJoCo physics {mj['physics_hz']:.0f} steps/s measured, "
             f"camera 30 fps), the policy in asynchronous execution ({mj['mode']}, control at "
             f"{settings['control_rate']:.0f} Hz), {mj['episodes']} episodes of `memory` per "
             f"arm, the same seeds.", '',
             '| arm | success [Wilson 95%] | writes / episode | commands / s | p99 period '
             'jitter ms (steal-free episodes) |', '|---|---|---|---|---|']
    for name, a in mj['arms'].items():
        calm = a.get('period_jitter_p99_ms_steal_free')
        calm = f" ({calm:.2f}, {a['steal_free_episodes']} eps)" if calm is not None else ''
        lines.append(f"| {name} | {_ci(a, 'success')} | {a['writes_per_episode']:.2f} | "
                     f"{a['control_rate_hz']:.1f} | {a['period_jitter_p99_ms']:.2f}{calm} |")
    t = mj['targets']
    lines += ['', f"Targets: AURA's lower bound above the base's upper bound: "
              f"{t.get('aura_above_base')}; writes {_x(t.get('write_reduction_vs_always_write'))}"
              f" fewer than always-write (>= 7x: {t.get('write_reduction_at_least_7x')}); "
              f"control at 100 Hz (within 1%) in every arm: "
              f"{t.get('control_rate_within_1pct')} (lowest "
              f"{t.get('control_rate_hz_min') or 0:.1f} Hz). Cost per 64x64 frame (lockstep, in "
              f"process, median of {mj['frame_cost']['frames']}): rendering "
              f"{mj['render_ms']:.2f} ms, physics ({mj['frame_cost']['physics_steps_per_frame']}"
              f" MuJoCo steps) {mj['physics_ms_per_frame']:.2f} ms.", '']
    ros = mj.get('through_ros')
    if ros:
        lines += [f"The deployed file through the nodes (separate processes over DDS, the sim "
                  f"in real time): {ros['episodes']} episodes, success {_ci(ros, 'success')}, "
                  f"{ros['writes_per_episode']:.2f} writes per episode.", '']
    return lines


def reliability_section(rel):
    """Safety and data integrity under faults (``bench reliability``)."""
    lines = ['## Safety and data integrity under faults (`reliability.json`, `reliability.png`)',
             '']
    limits = rel.get('limits')
    if limits:
        lines += ['The command rule (after any hold the first command within one step of the '
                  'measured positions, every other within one step of the previous command, '
                  'inside the joint limits, never NaN) checked on every command of a randomized '
                  'run of each execution (the objects the node runs), a stand-in backbone '
                  'asking for up to +-2 rad per action (sometimes NaN), with random pauses past '
                  'the frame timeout, the arm moved while paused, stale joint states, '
                  'disarm/arm, deactivate/activate and new episodes:', '',
                  '| execution | commands | holds caused | largest distance from reference '
                  '(rad) | step limit (rad) | violations |', '|---|---|---|---|---|---|']
        for kind, r in limits.items():
            lines.append(f"| {kind} | {r['commands']:,} | {r['holds_caused']} | "
                         f"{r['largest_from_reference']:.4f} | {r['step_limit']:.4f} | "
                         f"{r['violations']} |")
        lines.append('')
    server = rel.get('server')
    if server:
        lines += ['Backbone server, each oversized request field against a running server '
                  f"(receive limit {server['receive_limit_bytes']:,} B): code, time to refusal, "
                  'growth of the server process:', '',
                  '| field | code | refused in (ms) | RSS growth (MB) |', '|---|---|---|---|']
        for name, f in server['fields'].items():
            lines.append(f"| {name} | {f['code']} | {f['refusal_ms']:.1f} | "
                         f"{f['rss_growth_mb']:.1f} |")
        field_ms = server.get('slowest_field_refusal_ms', server['slowest_refusal_ms'])
        lines += ['', f"All refused: {server['all_refused']}; slowest refusal of a field "
                  f"(INVALID_ARGUMENT, checked before anything is allocated for the request) "
                  f"{field_ms:.1f} ms (target < 100); a message past gRPC's receive limit is "
                  f"refused by gRPC itself (RESOURCE_EXHAUSTED) in "
                  f"{server.get('transport_refusal_ms', server['slowest_refusal_ms']):.1f} ms as "
                  f"the client sees it (see bench/notes.md); largest growth of the server "
                  f"{server['largest_rss_growth_mb']:.1f} MB (target < 50); still serving "
                  f"afterwards: {server['still_serving']['after_all']}.", '']
    typos = rel.get('typos')
    if typos:
        lines += ['Parameter files with a typo, started as real node processes:', '',
                  '| case | node | exit status | line |', '|---|---|---|---|']
        for name, c in typos['cases'].items():
            status = 'running' if c['exit_status'] is None else c['exit_status']
            lines.append(f"| {name} | {c['node']} | {status} | {c['line'] or '-'} |")
        lines.append('')
    rec = rel.get('recording')
    if rec:
        lines += [f"Recording: {rec['launches']} launches of two simulated arms through the "
                  f"nodes (1 episode each): {rec['recorded']:,} of {rec['published']:,} gate "
                  f"events the policies sent are in the bags ({rec['lost']} lost; every launch "
                  f"ran to the end: {rec['all_ran']}).", '']
    down = rel.get('shutdown')
    if down:
        lines += [f"Shutdown: each node as a real process, {down['settle_s']:.0f} s after its "
                  'start (the policy node active with its model, the sim blocked in a 30 s wait '
                  f"for a command, recorders writing), SIGINT, {down['repeats']} times per node: "
                  'seconds until the process exited.', '',
                  '| node | median (s) | max (s) | clean exits |', '|---|---|---|---|']
        for node, r in down['nodes'].items():
            median, most = (('-' if v is None else f'{v:.2f}') for v in (r['median_s'],
                                                                         r['max_s']))
            lines.append(f"| {node} | {median} | {most} | {r['clean']} |")
        lines += ['', f"Every exit clean: {down['all_clean']}; every node within 1 s: "
                  f"{down['all_within_1s']}.", '']
    return lines


def render(folder):
    results = {name: _load(folder, f'{name}.json') for name in
               ('synthetic', 'state_growth', 'closed_loop', 'step_cost', 'latency', 'soak',
                'realtime', 'train_from_recordings', 'backbone_server', 'mujoco',
                'reliability', 'closed_loop_mujoco', 'lerobot', 'realtime_peers')}
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
    if results['closed_loop_mujoco']:
        lines += closed_loop_section(results['closed_loop_mujoco'], 'the SO-101 in MuJoCo',
                                     '`closed_loop_mujoco.json`, `closed_loop_mujoco.png`')
    if results['realtime']:
        lines += realtime_section(results['realtime'])
    if results['realtime_peers']:
        lines += realtime_section(results['realtime_peers'], "### The peers' chunk handovers "
                                  'beside ours (`realtime_peers.json`, `realtime_peers.png`)')
    if results['train_from_recordings']:
        lines += recordings_section(results['train_from_recordings'])
    if results['backbone_server']:
        lines += backbone_server_section(results['backbone_server'])
    if results['mujoco']:
        lines += mujoco_section(results['mujoco'])
    if results['reliability']:
        lines += reliability_section(results['reliability'])
    if results['lerobot']:
        from aura_ros.bench.lerobot_interop import section
        lines += section(results['lerobot'], (results['train_from_recordings'] or {}).get(
            'mujoco'))
    lines += perf_section(results)
    return '\n'.join(lines).rstrip() + '\n'


def write(folder, out, notes=''):
    text = render(folder)
    if notes:
        text += '\n' + notes.strip() + '\n'
    Path(out).write_text(text)
    return text
