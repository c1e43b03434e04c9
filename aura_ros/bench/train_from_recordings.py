"""The learning curve of the memory trained from recordings (task v2, plain variant).

    python -m aura_ros.bench train-from-recordings --json bench/results/train_from_recordings.json \
        --plot bench/results/train_from_recordings.png
    python -m aura_ros.bench train-from-recordings --engine mujoco --params config/sim_mujoco.yaml \
        --points 100,400 --json bench/results/train_from_recordings.json \
        --plot bench/results/train_from_recordings.png

The planar curve is the file's top level, the MuJoCo SO-101's is under ``"mujoco"`` (each run
keeps the other's); the plot draws the planar curve to ``--plot`` and the MuJoCo one next to
it (``*_mujoco.png``).

A user's path, at 50, 100, 200 and 400 recorded episodes; every stage cached under ``--work``
and resumed, since the curve takes hours:

1. Record (through ROS, separate processes over DDS): ``sim_arm_node`` in real time (30 fps,
   like a robot), ``sim_teleop`` demonstrating on teleop/joint_commands (the scripted expert +
   operator noise 0.3, as a teleop device), ``episode_recorder`` writing camera, joint states,
   demonstrated commands, episode events and the sim's FrameTruth to MCAP. Chunks of
   ``CHUNK`` episodes (seeds ``SEED + i``), one bag each; a point of N episodes trains on the
   first N / CHUNK bags (the smaller sets are the start of the larger ones).
2. Features: ``train episodes``'s extraction, one cache for every point.
3. Train, per point, on that point's recordings only (train split; the validation split gives
   report.json's numbers): ``aura``, ``aura_surprise_only``, ``always_write``, ``no_memory`` and
   the references ``cue_oracle`` / ``first_frame`` (always_write memories trained writing on the
   recorded cue onsets / the first frame only). A checkpoint is reused only if the code that
   trains (core, train) and the settings are the same (bench/code_key.py).
4. Evaluate every arm in closed loop, lockstep, in process with the policy node's runner, on
   the evaluation seeds of the closed-loop benchmark (``--eval-episodes``, the plain variant),
   the references with their writes forced by the sim's ground truth; ``base`` (the frozen
   policy alone) once.

On 2 cores: once the recordings exist, two processes with disjoint ``--arms`` (or
``--points``) share every cache; a last run with all of them only reads it and writes the JSON.
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

from aura_ros.bench.stats import wilson

SEED = 40_000
OTHER_ENGINES = ('mujoco',)     # stored under their name in the curve's JSON


def wait_for_graph(node, procs, wanted, timeout):
    """Spin ``node`` until every ``(('pub' | 'sub'), topic): count`` of ``wanted`` is matched
    in the ROS graph (counts include ``node``'s own endpoints); False after ``timeout`` s or
    when one of ``procs`` exits."""
    import rclpy
    deadline = time.monotonic() + timeout
    count = {'pub': node.count_publishers, 'sub': node.count_subscribers}
    while time.monotonic() < deadline:
        if all(count[kind]('/' + topic) >= n for (kind, topic), n in wanted.items()):
            return True
        if any(p.poll() is not None for p in procs.values()):
            return False
        rclpy.spin_once(node, timeout_sec=0.1)
    return False


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
        # The sim starts its first episode start_delay after it is up, whether or not anyone
        # listens: start it once the operator and the recorder are in the graph (importing
        # MuJoCo on a loaded machine takes longer than that delay; an episode the teleop joins
        # late is an open-loop failure, and frames the recorder misses are lost).
        if not wait_for_graph(node, procs, {
                ('pub', topics.TELEOP_COMMANDS): 1,       # sim_teleop
                ('sub', topics.TELEOP_COMMANDS): 1,       # the recorder, once it saw the type
                ('sub', topics.CAMERA): 2, ('sub', topics.JOINT_STATES): 2,
                ('sub', topics.SIM_EPISODE_EVENTS): 3}, timeout=60.0):
            print(f'record: sim_teleop and episode_recorder not in the graph within 60 s, '
                  f'see {logs}/*.log', file=sys.stderr)
            return False, outcomes
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
    if ok and sim.returncode == 0 and len(outcomes) != episodes:
        # This node's subscription missed an END event (discovery late on a loaded machine):
        # the bag is the record that training reads; take the outcomes from it.
        outcomes = bag_outcomes(out, outcomes)
    if ok and (sim.returncode != 0 or len(outcomes) != episodes):
        print(f'record: sim_arm_node exited with {sim.returncode}, {len(outcomes)} of '
              f'{episodes} episode ends received, see {logs}/*.log', file=sys.stderr)
        ok = False
    return ok, outcomes


def bag_outcomes(bag, fallback):
    """Each recorded episode's success, as the bag's episode events say (``fallback`` if the
    bag cannot be read or an episode has no END event)."""
    from aura_ros.train.bags import BagError, RecordingError, scan
    try:
        spans = scan(bag).episodes
    except (BagError, RecordingError):
        return fallback
    if any(s.success is None for s in spans):
        return fallback
    return [bool(s.success) for s in spans]


CHUNK = 50
CURVE_ARMS = ('aura', 'aura_surprise_only', 'always_write', 'no_memory', 'cue_oracle',
              'first_frame')
TRAINED_BY = ('core', 'train', 'policy.py', 'backbones', 'imaging.py')    # code_key parts
EVALUATED_BY = ('core', 'sim', 'policy.py', 'backbones', 'control', 'bench/closed_loop.py')


def _arm_result(stats):
    keep = ('success', 'success_ci95', 'successes', 'episodes', 'writes_per_episode',
            'steps_per_episode', 'write_probability')
    return {k: stats[k] for k in keep}


def record_chunks(work, engine, n_chunks, noise, progress):
    """Bags of CHUNK episodes each (resumed: a chunk with its ``done.json`` is kept)."""
    import json
    bags = []
    for c in range(n_chunks):
        bag = Path(work) / engine / 'bags' / f'chunk_{c:02d}'
        done = bag.parent / f'chunk_{c:02d}.done.json'
        if not done.is_file():
            ok, outcomes = record_sim_demonstrations(
                bag, CHUNK, 'memory', SEED + CHUNK * c, noise, progress=progress,
                engine=engine, timeout=60.0 + 6.0 * CHUNK)
            if not ok:
                raise RuntimeError(f'recording chunk {c} failed: {len(outcomes)}/{CHUNK} '
                                   f'episodes; see {bag}_logs')
            done.write_text(json.dumps({'outcomes': outcomes}) + '\n')
        bags.append(bag)
    return bags


def recorded(bags):
    """What each chunk holds: its bag's identity (the feature and checkpoint caches' key; a
    re-recording, even of the same seeds, is another dataset: real time) and how many of its
    demonstrations succeeded."""
    import json

    from aura_ros.train.bags import bag_key
    out = []
    for bag in bags:
        outcomes = json.loads((bag.parent / f'{bag.name}.done.json').read_text())['outcomes']
        out.append({'bag': bag.name, 'bag_key': bag_key(bag), 'episodes': len(outcomes),
                    'demonstrations_succeeded': int(sum(outcomes))})
    return out


def train_point(bags, params, folder, arms, settings, log=print):
    """Every arm of one point: {arm: (memory, train_seconds)}, each from its cache if the code
    and settings that trained it are the same, else trained and cached."""
    from aura_ros.bench.code_key import code_digest, load_cached, result_key, store
    from aura_ros.bench.realtime import params_digest
    from aura_ros.core import load_memory
    from aura_ros.train.episodes import fit_arm, prepare, source_key
    from aura_ros.train.memory_fit import FEATURE_NOISE, write_rate_on
    folder.mkdir(parents=True, exist_ok=True)
    common = dict(code=code_digest(*TRAINED_BY), bags=[source_key(b) for b in bags],
                  params=params_digest(params), steps=settings.steps, seed=settings.seed,
                  val_fraction=settings.val_fraction, feature_noise=FEATURE_NOISE)
    prepared, out, rate = None, {}, None
    budgets = ('random_budget', 'periodic_budget', 'skip_budget')     # trained on aura's rate
    needs_aura = 'aura' in arms or any(a in budgets for a in arms)
    for arm in ['aura'] * needs_aura + [a for a in arms if a != 'aura']:
        key = result_key(arm=arm, rate=round(rate, 6) if arm in budgets else None, **common)
        meta, path = folder / f'{arm}.json', folder / f'memory_{arm}.safetensors'
        cached = load_cached(meta, key)
        if cached and path.is_file():
            memory = load_memory(path)
        else:
            if prepared is None:
                prepared = prepare([str(b) for b in bags], str(params), folder, settings, log)
            t0 = time.monotonic()
            memory = fit_arm(arm, prepared, settings, rate)
            cached = {'train_seconds': time.monotonic() - t0}
            if arm == 'aura':           # its write rate: the budget arms' budget
                cached['rate'] = write_rate_on(memory, prepared.train_data)
            memory.save(path)
            store(meta, key, cached)
        rate = cached['rate'] if arm == 'aura' else rate
        out[arm] = (memory, cached['train_seconds'])
    return out


def evaluate_point(backbone, memories, folder, episodes, engine, progress):
    """Closed-loop numbers of every arm ({arm: (memory, _)}; None: the frozen policy), each
    cached by the checkpoint's bytes, the evaluation settings and the code that runs it."""
    import hashlib

    from aura_ros.bench.closed_loop import EVAL_SEED, ForcedWrites, rollouts, summarise
    from aura_ros.bench.code_key import code_digest, load_cached, result_key, store
    from aura_ros.train.episodes import FORCED_ARMS
    code = code_digest(*EVALUATED_BY)
    out = {}
    for arm, (memory, _) in memories.items():
        path = folder / f'memory_{arm}.safetensors'
        weights = hashlib.sha256(path.read_bytes()).hexdigest() if memory is not None else None
        key = result_key(code=code, arm=arm, weights=weights, episodes=episodes,
                         engine=engine, first_seed=EVAL_SEED, variant='memory')
        meta = folder / f'eval_{arm}.json'
        cached = load_cached(meta, key)
        if cached is None:
            before = None
            if arm in FORCED_ARMS:
                before = ForcedWrites(arm).attach(memory).before_step
            logs = rollouts(backbone, memory, 'memory', range(EVAL_SEED, EVAL_SEED + episodes),
                            engine, before, progress, desc=f'{folder.name} {arm}')
            cached = _arm_result(summarise(logs))
            store(meta, key, cached)
        out[arm] = cached
    return out


def run(points=(50, 100, 200, 400), eval_episodes=200, steps=2000, seed=0, engine='planar',
        params=None, work='bench/results/tfr_work', arms=CURVE_ARMS, noise=0.3, progress=True):
    from aura_ros.paths import package_share
    from aura_ros.train.episodes import Settings, load_deployment
    torch.set_num_threads(1)
    t_start = time.monotonic()
    work = Path(work)
    if any(n % CHUNK for n in points):
        raise ValueError(f'points must be multiples of {CHUNK}, got {points}')
    params = Path(params or Path(package_share('aura_ros')) / 'config' / 'default.yaml')
    bags = record_chunks(work, engine, max(points) // CHUNK, noise, progress)
    recordings = recorded(bags)
    settings = Settings(steps=steps, seed=seed, progress=progress,
                        cache_dir=str(work / engine / 'features'))
    backbone = load_deployment(str(params)).backbone
    curve = {}
    for n in points:
        folder = work / engine / f'n{n:04d}'
        trained = train_point(bags[:n // CHUNK], params, folder, arms, settings)
        results = evaluate_point(backbone, trained, folder, eval_episodes, engine, progress)
        for arm, (_, seconds) in trained.items():
            results[arm]['train_seconds'] = seconds
        curve[str(n)] = {'train_seconds': sum(s for _, s in trained.values()),
                         'train_seconds_aura_no_memory': sum(
                             trained[a][1] for a in ('aura', 'no_memory') if a in trained),
                         'arms': results, 'targets': targets(results, n)}
    base_folder = work / engine / 'base'
    base_folder.mkdir(parents=True, exist_ok=True)
    base = evaluate_point(backbone, {'base': (None, 0.0)}, base_folder, eval_episodes, engine,
                          progress)
    return {'task': 'v2, plain variant (memory): one cue at a random onset', 'engine': engine,
            'params': str(params), 'points': list(points), 'eval_episodes': eval_episodes,
            'steps': steps, 'seed': seed, 'teleop_noise': noise, 'chunk': CHUNK,
            'recordings': recordings, 'curve': curve, 'references': base,
            'elapsed_s': time.monotonic() - t_start}


def targets(arms, n):
    """The issue's targets at one point (None where an arm is missing)."""
    aura, none = arms.get('aura'), arms.get('no_memory')
    oracle, always = arms.get('cue_oracle'), arms.get('always_write')
    out = {}
    if aura and oracle:
        out['writes_at_most_2x_cue_oracle'] = bool(
            aura['writes_per_episode'] <= 2 * oracle['writes_per_episode'])
        if n >= 100:
            out['success_within_or_above_cue_oracle'] = bool(
                aura['success'] >= oracle['success_ci95'][0])
    if aura and none:
        out['success_above_no_memory'] = bool(
            aura['success_ci95'][0] > none['success_ci95'][1])
    surprise = arms.get('aura_surprise_only')
    if aura and surprise and always and n >= 100:
        def reduction(arm):
            return always['writes_per_episode'] / max(arm['writes_per_episode'], 1e-9)
        out['surprise_only_keeps_80pct_of_aura_write_reduction'] = bool(
            reduction(surprise) >= 0.8 * reduction(aura))
    return out


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


def merged(previous, result):
    """The JSON file's content after a run of ``result['engine']``: the planar curve at the top
    level, another engine's under its name, the other engine's part of ``previous`` kept."""
    if result['engine'] == 'planar':
        return {**result, **{k: v for k, v in previous.items() if k in OTHER_ENGINES}}
    kept = {k: v for k, v in previous.items() if k != result['engine']}
    return {**kept, result['engine']: result}


def plot(result, path):
    """The planar curve to ``path`` (if the result has one), each other engine's curve to
    ``<path stem>_<engine>.png``. Returns the paths written."""
    path, written = Path(path), []
    if 'curve' in result:
        plot_curve(result, path)
        written.append(path)
    for engine in OTHER_ENGINES:
        if engine in result:
            written.append(path.with_name(f'{path.stem}_{engine}{path.suffix}'))
            plot_curve(result[engine], written[-1])
    return written


def plot_curve(result, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    points = [int(n) for n in result['curve']]
    arms = list(next(iter(result['curve'].values()))['arms'])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for i, arm in enumerate(arms):
        rows = [result['curve'][str(n)]['arms'][arm] for n in points]
        s = np.array([r['success'] for r in rows])
        ci = np.array([r['success_ci95'] for r in rows])
        style = '--' if arm in ('cue_oracle', 'first_frame') else '-'
        axes[0].errorbar(np.array(points) * (1 + 0.02 * i), s,
                         yerr=[s - ci[:, 0], ci[:, 1] - s], label=arm, ls=style, capsize=3,
                         marker='o')
        axes[1].plot(points, [r['writes_per_episode'] for r in rows], ls=style, marker='o',
                     label=arm)
    base = result['references']['base']
    axes[0].axhspan(*base['success_ci95'], color='grey', alpha=0.2, label='base (frozen)')
    from matplotlib.ticker import NullFormatter
    for ax, label in zip(axes, ('closed-loop success (Wilson 95%)', 'writes per episode')):
        ax.set_xscale('log')
        ax.set_xticks(points)
        ax.set_xticklabels(points)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel('recorded episodes')
        ax.set_ylabel(label)
    axes[1].set_yscale('symlog', linthresh=0.1)     # 0 (no_memory) and 0.3-50 readable
    ticks = [0, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50]
    axes[1].set_yticks(ticks)
    axes[1].set_yticklabels([f'{t:g}' for t in ticks])
    axes[1].yaxis.set_minor_formatter(NullFormatter())
    axes[1].set_ylim(bottom=0, top=60)
    axes[1].grid(axis='y', alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()   # where the writes panel is empty
    axes[1].legend(handles, labels, fontsize=8, ncol=2, loc='lower center',
                   bbox_to_anchor=(0.5, 0.07))
    fig.suptitle(f"memory trained from recordings ({result['engine']}, task v2 plain; "
                 f"{result['eval_episodes']} evaluation episodes per arm and point)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
