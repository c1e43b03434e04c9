"""The recorded-demonstrations path end to end on the simulated arm, against training in process.

    python -m aura_ros.bench train-from-recordings --episodes 600 \
        --json bench/results/train_from_recordings.json

1. Record (through ROS, separate processes over DDS): ``sim_arm_node`` in real time (30 fps,
   like a robot), ``sim_teleop`` demonstrating on teleop/joint_commands (the scripted expert +
   operator noise 0.3, as a teleop device), ``episode_recorder`` writing camera, joint states,
   demonstrated commands and the sim's episode events to MCAP. Half the episodes on the
   ``memory`` variant, half on ``memory_hard`` (the mix ``train memory`` uses), seeds
   ``seed + i``.
2. ``train episodes`` on those bags with the default parameter file (the embedded tiny PI0);
   then the same pass again to measure that the cache skips the backbone.
3. In process, the comparison: ``train memory``'s data path (collect_features: the same
   variants and seeds, noisy-expert execution, the clean expert as label) and the same fit.
4. Closed loop, in process with the policy node's runner (PolicyRunner), on the evaluation
   seeds of the closed-loop benchmark: from_recordings (AURA from the bags), in_process,
   base (the frozen VLA alone), always_write (from the bags). Then the recorded checkpoint is
   deployed by parameter file only (the printed params lines applied to config/default.yaml)
   and run through the nodes for ``--through-ros`` episodes.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from aura_ros.bench.param_files import write_params_with
from aura_ros.bench.stats import wilson

SEED = 40_000
VARIANTS = ('memory', 'memory_hard')


def record_sim_demonstrations(out, episodes, variant='memory', seed=SEED, noise=0.3,
                              command_type='joint_trajectory', timeout=None, progress=True,
                              lockstep=False, engine='planar'):
    """Record ``episodes`` teleoperated sim episodes of the ``engine``'s arm into the bag
    ``out`` (through the nodes). Returns (ok, outcomes): outcomes = [success per episode] as
    the sim reported them."""
    import rclpy

    from aura_ros import topics
    from aura_ros.msg import EpisodeEvent
    from aura_ros.tools.processes import executable
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    logs = out.parent / f'{out.name}_logs'
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               RCUTILS_LOGGING_BUFFERED_STREAM='0')
    env.setdefault('AMENT_PREFIX_PATH', sys.prefix)
    procs, files = {}, []

    def start(name, *ros_args):
        log = open(logs / f'{name}.log', 'w')
        files.append(log)
        procs[name] = subprocess.Popen([executable(name), '--ros-args', *ros_args], env=env,
                                       stdout=log, stderr=subprocess.STDOUT)
        return procs[name]

    rclpy.init()
    node = rclpy.create_node('aura_record_demos')
    outcomes = []
    bar = tqdm(total=episodes, desc=f'recording ({variant})', disable=not progress,
               leave=False)

    def on_event(msg):
        if msg.event == EpisodeEvent.END:
            outcomes.append(bool(msg.success))
            bar.update(1)

    node.create_subscription(EpisodeEvent, '/' + topics.SIM_EPISODE_EVENTS, on_event, 100)
    ok = True
    try:
        start('episode_recorder', '-p', f'output:={out}', '-p',
              f'topics:=[{topics.CAMERA}, {topics.JOINT_STATES}, {topics.TELEOP_COMMANDS}, '
              f'{topics.SIM_EPISODE_EVENTS}, {topics.FRAME_TRUTH}]')
        start('sim_teleop', '-p', f'engine:={engine}', '-p', f'episodes:={episodes}', '-p',
              f'variant:={variant}',
              '-p', f'noise:={noise}', '-p', f'seed:={seed}', '-p',
              f'command_type:={command_type}')
        sim = start('sim_arm_node', '-p', f'engine:={engine}', '-p', f'episodes:={episodes}',
                    '-p', f'variant:={variant}',
                    '-p', f'seed:={seed}', '-p', f'lockstep:={str(lockstep).lower()}', '-p',
                    f'command_topic:={topics.TELEOP_COMMANDS}', '-p',
                    f'command_type:={command_type}', '-p', 'policy:=""', '-p',
                    'start_delay:=2.0')
        deadline = time.monotonic() + (timeout or 30.0 + 5.0 * episodes)
        while sim.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.1)
            crashed = [n for n, p in procs.items() if p.poll() not in (None, 0)]
            if crashed or time.monotonic() > deadline:
                print(f'record: {"timed out" if not crashed else f"{crashed} exited early"}, '
                      f'see {logs}/*.log', file=sys.stderr)
                ok = False
                break
        end = time.monotonic() + 1.5          # the last END event and commands reach the bag
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        bar.close()
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                ok = False
        for f in files:
            f.close()
        node.destroy_node()
        rclpy.try_shutdown()
    if ok and (sim.returncode != 0 or len(outcomes) != episodes):
        print(f'record: sim_arm_node exited with {sim.returncode}, {len(outcomes)} of '
              f'{episodes} episode ends received, see {logs}/*.log', file=sys.stderr)
        ok = False
    return ok, outcomes


def _arm_result(stats):
    keep = ('success', 'success_ci95', 'successes', 'writes_per_episode', 'steps_per_episode',
            'write_probability')
    return {k: stats[k] for k in keep}


def run(episodes=600, eval_episodes=200, steps=2000, seed=0, work='bench/results/tfr_work',
        through_ros=20, progress=True, noise=0.3):
    from aura_ros.bench.closed_loop import evaluate_arm
    from aura_ros.paths import package_share
    from aura_ros.train.episodes import (
        Settings,
        check_cache_dir,
        extract_features,
        load_deployment,
        read_recordings,
        train_from_recordings,
    )
    from aura_ros.train.memory_fit import collect_features, fit_memory
    torch.set_num_threads(1)
    t_start = time.monotonic()
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    params = Path(package_share('aura_ros')) / 'config' / 'default.yaml'
    result = {'episodes': episodes, 'eval_episodes': eval_episodes, 'steps': steps,
              'seed': seed, 'teleop_noise': noise, 'variants': list(VARIANTS)}

    # 1. record through the nodes
    per_variant = [episodes // 2, episodes - episodes // 2]
    bags, recorded, demo_success = [], 0, []
    t0 = time.monotonic()
    for variant, n in zip(VARIANTS, per_variant):
        bag = work / f'bags/{variant}'
        ok, outcomes = record_sim_demonstrations(bag, n, variant, SEED, noise,
                                                 progress=progress)
        if not ok:
            raise RuntimeError(f'recording {variant} failed: {len(outcomes)}/{n} episodes; see '
                               f'{bag}_logs')
        bags.append(bag)
        recorded += len(outcomes)
        demo_success += outcomes
    result['recording_s'] = time.monotonic() - t0
    result['episodes_recorded'] = recorded
    result['demonstration_success'] = float(np.mean(demo_success))

    # 2. train from the bags, then the cache's second pass
    settings = Settings(steps=steps, seed=seed, progress=progress)
    out = work / 'from_recordings'
    if out.exists():
        shutil.rmtree(out)
    report = train_from_recordings([str(b) for b in bags], str(params), out, settings)
    result['frames'] = report['frames']
    result['frames_labelled'] = report['frames_labelled']
    result['frames_dropped_unsynced'] = report['frames_dropped_unsynced']
    result['dropped'] = report['dropped']
    result['validation'] = report['validation']
    deployment = load_deployment(str(params))
    t0 = time.monotonic()
    eps, _ = read_recordings([str(b) for b in bags], deployment, settings, log=lambda *_: None)
    again = extract_features(eps, deployment, settings, check_cache_dir(out / 'features',
                                                                        deployment))
    result['feature_extraction'] = dict(
        first_run=report['feature_extraction'],
        frames_per_s=report['feature_extraction']['frames_per_s'],
        second_run={'frames_computed': again['frames'],
                    'cached_episodes': again['cached_episodes'],
                    'seconds': time.monotonic() - t0})

    # 3. the in-process comparison on the same variants, seeds and number of episodes
    backbone = deployment.backbone
    action_std = backbone.config.action_std or [1.0] * backbone.config.action_dim
    data = []
    for variant, n in zip(VARIANTS, per_variant):
        data += collect_features(backbone, range(SEED, SEED + n), variants=(variant,),
                                 noise=noise, desc=f'features in process ({variant})',
                                 progress=progress)
    in_process = fit_memory('aura', data, action_std, steps=steps, seed=seed,
                            target_write_rate=settings.target_write_rate, progress=progress)

    # 4. closed loop, in process, same runner and seeds for every arm
    from aura_ros.core import load_memory
    arms = {'from_recordings': load_memory(out / 'memory.safetensors'),
            'in_process': in_process, 'base': None,
            'always_write': load_memory(out / 'memory_always_write.safetensors'),
            'no_memory': load_memory(out / 'memory_no_memory.safetensors')}
    result['variant_results'] = {}
    for variant in VARIANTS:
        block = {name: _arm_result(evaluate_arm(backbone, memory, variant, eval_episodes,
                                                progress, desc=f'{variant} {name}'))
                 for name, memory in arms.items()}
        result['variant_results'][variant] = block
    result['arms'] = result['variant_results'][VARIANTS[0]]
    result['headline_variant'] = VARIANTS[0]
    result['targets'] = {v: targets(b) for v, b in result['variant_results'].items()}

    # deployed by parameter file only, through the nodes
    if through_ros:
        result['through_ros'] = deploy_check(params, out, through_ros, work)
    result['elapsed_s'] = time.monotonic() - t_start
    return result


def targets(block):
    rec, proc = block['from_recordings'], block['in_process']
    base, always = block['base'], block['always_write']
    lo, hi = proc['success_ci95']
    w = rec['writes_per_episode']
    return {'within_in_process_ci': bool(lo <= rec['success'] <= hi),
            'above_base': bool(rec['success_ci95'][0] > base['success_ci95'][1]),
            'write_reduction_vs_always_write': (always['writes_per_episode'] / w) if w else None,
            'write_reduction_at_least_7x': bool(w and always['writes_per_episode'] / w >= 7)}


def run_deployed(params, episodes, seed, logs, timeout=600.0):
    """``episodes`` of the memory task through the nodes with the parameter file ``params``:
    success with its Wilson interval and writes per episode."""
    from aura_ros.tools.demo import run_through_nodes
    ok, results, _ = run_through_nodes(episodes, 'memory', seed, str(params), logs,
                                       timeout=timeout, verbose=False)
    successes = sum(r.success for r, _, _ in results)
    return {'params_file': str(params), 'episodes': len(results), 'processes_ok': ok,
            'success': successes / max(len(results), 1),
            'success_ci95': wilson(successes, len(results)),
            'writes_per_episode': float(np.mean([w for _, _, w in results])) if results else 0}


def deploy_check(params, out, episodes, work):
    """The default parameter file with the printed checkpoint line applied (what a user does),
    run through the nodes (lockstep sim + perception + policy)."""
    from aura_ros.bench.closed_loop import EVAL_SEED
    checkpoint = (Path(out) / 'memory.safetensors').resolve()
    deployed = write_params_with(params, Path(work) / 'deployed.yaml', [(
        'checkpoint: package://aura_ros/models/aura_sim/memory.safetensors',
        f'checkpoint: {checkpoint}')])
    return run_deployed(deployed, episodes, EVAL_SEED, Path(work) / 'deploy_logs')


def plot(result, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    variants = list(result['variant_results'])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    names = list(result['arms'])
    width = 0.8 / len(variants)
    for j, variant in enumerate(variants):
        block = result['variant_results'][variant]
        x = np.arange(len(names)) + j * width
        s = np.array([block[n]['success'] for n in names])
        ci = np.array([block[n]['success_ci95'] for n in names])
        axes[0].bar(x, s, width, yerr=[s - ci[:, 0], ci[:, 1] - s], capsize=3, label=variant)
        axes[1].bar(x, [block[n]['writes_per_episode'] for n in names], width, label=variant)
    for ax, label in zip(axes, ('closed-loop success (Wilson 95%)', 'writes per episode')):
        ax.set_xticks(np.arange(len(names)) + width * (len(variants) - 1) / 2)
        ax.set_xticklabels(names, rotation=15)
        ax.set_ylabel(label)
        ax.legend()
    axes[1].set_yscale('symlog')
    fig.suptitle(f"memory trained from {result['episodes_recorded']} recorded episodes vs in "
                 f"process ({result['eval_episodes']} evaluation episodes per arm)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
