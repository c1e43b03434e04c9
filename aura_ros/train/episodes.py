"""Train AURA for your robot and backbone from recorded episodes (``train episodes``).

    python -m aura_ros.train episodes BAG_OR_DIR... --params my_arm.yaml --out DIR

1. Read: every bag is scanned (aura_ros.train.bags) and split into episodes; every frame of an
   episode is matched with the nearest joint state and demonstrated command within
   ``tolerance`` (aura_ros.train.recordings.align; unmatched frames are dropped and counted),
   and the matched commands become actions in the parameter file's ``command.action_type``.
   DAgger recordings (the policy drove, a person corrected it at times): with a correction
   topic, a frame's label is the correction within ``tolerance`` where there is one, else the
   command that was sent.
   All checks run before any model work: a bad bag stops the run with one line (or, with
   ``on_bad_bag='skip'``, is skipped with a warning).
2. Features: every frame goes through the frozen backbone the parameter file names, exactly as
   on the robot: perception's crop and resize, then ``PolicyRunner.step`` (features and the
   chunked base action, chunk by chunk) with the measured joint positions. One safetensors
   file per episode under ``cache_dir`` (default OUT/features), keyed by the backbone (its
   block, the crop and the model files) and the bag (its files): a second run, or a run
   resumed after an interruption, reads them instead. A cache folder of another backbone is
   refused.
3. Train: episodes are split into train and validation by episode (never by frame), seeded;
   AURA and its controls (``always_write``, ``no_memory``: the residual head alone) are fitted
   on the train episodes with the same objective as ``train memory`` (memory_fit.fit_memory).
4. Report: OUT/memory.safetensors (AURA) and memory_<arm>.safetensors, report.json
   (validation action error per arm and of the base, writes per episode, drops, feature
   throughput; with FrameTruth in the bags, writes per kind of frame and the action error on
   memory frames; ``meanings`` says what each number is; ``warnings``, printed too: few
   episodes, a gate writing on more than 20% of frames or closed (under 0.1 writes per
   episode), a memory no better than no_memory where memory matters), validation.png (error
   and writes per arm), gate_activity.png (the gate on a few validation episodes) and
   params.yaml (the lines that load the checkpoint).
   Outputs are written only once everything has been trained.
"""
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from aura_ros.core import GATED_KINDS
from aura_ros.train.bags import BagError, StreamTopics, find_bags, iter_frames, scan
from aura_ros.train.lerobot_format import DatasetKeys, is_dataset, iter_dataset_frames, scan_dataset
from aura_ros.train.recordings import RecordingError, align, demonstrated_actions, nearest

ARMS = ('aura', 'always_write', 'no_memory')
# --quick: a first look at a gate that has learnt to write (at 500 steps the calibration
# recording's gate was still closed; at 1,000 a small noisy recording's: bench/notes.md)
QUICK = {'steps': 1500, 'arms': ('aura', 'no_memory')}
# Reference arms with a fixed write schedule from the recordings' FrameTruth (a sim's): an
# always_write memory trained, validated and deployed writing exactly there (force_writes).
FORCED_ARMS = {'cue_oracle': 'writes exactly on the frames that bring news (a cue onset)',
               'first_frame': 'writes on the first frame of an episode only'}


CACHE_VERSION = 1


@dataclass
class Settings:
    topics: StreamTopics = field(default_factory=StreamTopics)
    dataset: DatasetKeys = field(default_factory=DatasetKeys)   # LeRobot dataset folders
    tolerance: float = 0.05          # s
    action_lag: float = 0.0          # s
    stamps: str = 'header'
    val_fraction: float = 0.2
    arms: tuple = ARMS
    steps: int = 2000
    seed: int = 0
    on_bad_bag: str = 'stop'         # 'stop' | 'skip'
    cache_dir: str | None = None
    progress: bool = True

    def __post_init__(self):
        from aura_ros.core import MEMORY_KINDS
        known = MEMORY_KINDS + tuple(FORCED_ARMS)
        unknown = [a for a in self.arms if a not in known]
        if unknown:
            raise ValueError(f'unknown arm(s) {unknown}: one of {", ".join(known)}')


@dataclass
class Deployment:
    """What the parameter file says the policy node will run."""
    backbone: object
    block: dict
    limits: object                   # CommandLimits
    joint_names: list
    image_size: int
    crop: str
    instruction: str
    key: str                         # backbone identity for the feature cache


def command_setup(params_path):
    """What reading recordings needs of a parameter file (joint names, command limits and
    the action convention), without loading its backbone."""
    from types import SimpleNamespace

    from aura_ros.params import POLICY_PARAMS, read_params_file, with_defaults
    from aura_ros.policy import CommandLimits
    values, _ = read_params_file(params_path, 'policy_node')
    policy = with_defaults(values, POLICY_PARAMS)
    return SimpleNamespace(joint_names=list(policy['command.joint_names']),
                           limits=CommandLimits.from_params(policy))


def load_deployment(params_path):
    """Backbone, limits, perception settings of a parameter file (as the nodes read them)."""
    from aura_ros.backbones import build_backbone
    from aura_ros.params import POLICY_PARAMS, backbone_block, read_params_file, with_defaults
    from aura_ros.policy import CommandLimits
    values, base_dir = read_params_file(params_path, 'policy_node')
    policy = with_defaults(values, POLICY_PARAMS)
    perception, _ = read_params_file(params_path, 'perception_node')
    block = backbone_block(values)
    backbone = build_backbone(block, base_dir=base_dir)
    limits = CommandLimits.from_params(policy)
    crop = perception.get('crop', 'center')
    model_files = []
    try:
        from aura_ros.paths import resolve_path
        folder = resolve_path(block['model_path'], base_dir)
        model_files = [(p.name, p.stat().st_size) for p in sorted(Path(folder).rglob('*'))
                       if p.is_file()]
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        pass
    identity = json.dumps({'block': block, 'crop': crop, 'files': model_files,
                           'version': CACHE_VERSION}, sort_keys=True, default=str)
    return Deployment(backbone, block, limits, list(policy['command.joint_names']),
                      int(block['image_size']), crop, str(block.get('instruction', '')),
                      hashlib.sha256(identity.encode()).hexdigest()[:16])


# ---- 1. read ---------------------------------------------------------------------------------
@dataclass
class EpisodeData:
    bag: str
    bag_key: str
    span: object                     # EpisodeSpan
    frames: np.ndarray               # (F,) frame indices of the episode in the bag
    positions_all: np.ndarray        # (F, J) nearest joint state of every frame
    kept: np.ndarray                 # (K,) positions within ``frames`` that have labels
    actions: np.ndarray              # (K, J) demonstrated actions (parameter file convention)
    dropped: dict
    corrected: int = 0               # DAgger: labels taken from a correction
    targets: np.ndarray | None = None  # (K, J) the demonstrated joint targets themselves
    times: np.ndarray | None = None    # (F,) s, every frame's time (its source's clock)
    features: torch.Tensor | None = None   # (F, feature_dim) of every frame (extract_features)
    base: torch.Tensor | None = None       # (F, A) the frozen policy's actions
    kinds: list = None               # (F,) FrameTruth kind of every frame (a sim's), or None


def read_recordings(paths, deployment, settings, log=print):
    """(episodes, summary): every episode with labels, or a RecordingError saying why not."""
    episodes, summary = [], {'bags': [], 'skipped_bags': [], 'frames': 0,
                             'frames_dropped_unsynced': 0, 'dropped': {}, 'warnings': [],
                             'offsets_s': []}
    J = len(deployment.limits.lower)
    for path in find_sources(paths):
        try:
            found = (scan_dataset(path, settings.dataset, deployment.joint_names)
                     if is_dataset(path) else
                     scan(path, settings.topics, deployment.joint_names, settings.stamps))
            bag_episodes = _label(found, deployment, settings, J)
        except BagError as exc:
            if settings.on_bad_bag != 'skip':
                raise
            summary['skipped_bags'].append(str(exc))
            log(f'warning: skipped {exc}')
            continue
        summary['bags'].append(str(path))
        summary['warnings'] += [f'{path}: {w}' for w in found.warnings]
        for ep in bag_episodes:
            episodes.append(ep)
            summary['frames'] += len(ep.frames)
            for reason, n in ep.dropped.items():
                summary['dropped'][reason] = summary['dropped'].get(reason, 0) + n
                summary['frames_dropped_unsynced'] += n
    if not episodes:
        raise RecordingError('no episode with labelled frames in ' + ', '.join(map(str, paths)))
    return episodes, summary


def find_sources(paths):
    """Recordings named by ``paths``: LeRobot dataset folders (meta/info.json), bags, and
    folders holding either or both (sorted; nothing inside a dataset counts as a bag)."""
    found = []
    for path in map(Path, paths):
        if is_dataset(path):
            found.append(path)
            continue
        if not path.is_dir():
            found += find_bags([path])
            continue
        datasets = sorted(p.parents[1] for p in path.rglob('meta/info.json'))
        bags = []
        try:
            bags = [b for b in find_bags([path])
                    if not any(b == d or d in b.parents for d in datasets)]
        except BagError:
            if not datasets:
                raise
        found += sorted(datasets + bags)
    return found


def source_key(path, keys=None):
    """Identity of a recording for the caches: a bag's files, or a dataset's files and what
    is read of them (``keys``: camera, state, action, units)."""
    from aura_ros.train.bags import bag_key
    from aura_ros.train.lerobot_format import DatasetKeys, dataset_key
    return dataset_key(path, keys or DatasetKeys()) if is_dataset(path) else bag_key(path)


def source_frames(path, settings, wanted):
    """(frame index, RGB) of a bag's camera topic or a dataset's camera (see scan)."""
    if is_dataset(path):
        return iter_dataset_frames(path, settings.dataset, wanted)
    return iter_frames(path, settings.topics, wanted=wanted)


def _label(found, deployment, settings, J):
    if found.joint_positions.shape[1] not in (0, J):
        raise RecordingError(f'{found.path}: joint states have {found.joint_positions.shape[1]} '
                             f'joints, the parameter file commands {J}')
    if found.demo_positions.shape[1] not in (0, J):
        raise RecordingError(f'{found.path}: demonstrated commands have '
                             f'{found.demo_positions.shape[1]} values, the parameter file '
                             f'commands {J} joints')
    out = []
    for span in found.episodes:
        frames = found.episode_frames(span)
        where = f'{found.path} episode {span.index}'
        if len(frames) == 0:
            raise RecordingError(f'{where}: no frames between its START and END events')
        if len(found.demo_times) == 0:
            raise RecordingError(f'{found.path}: no demonstrated commands on '
                                 f'{settings.topics.commands!r}')
        try:
            a = align(found.frame_times[frames], found.joint_times, found.joint_positions,
                      found.demo_times, found.demo_positions, settings.tolerance,
                      settings.action_lag)
        except RecordingError as exc:
            raise RecordingError(f'{where}: {exc}') from None
        pick, _ = nearest(found.joint_times, found.frame_times[frames])
        targets, corrected = a.targets, 0
        if len(found.correction_times):     # DAgger: a correction replaces the command
            if found.correction_positions.shape[1] != J:
                raise RecordingError(f'{found.path}: corrections have '
                                     f'{found.correction_positions.shape[1]} values, the '
                                     f'parameter file commands {J} joints')
            idx, off = nearest(found.correction_times,
                               found.frame_times[frames[a.frames]] + settings.action_lag)
            near = np.abs(off) <= settings.tolerance
            targets = np.where(near[:, None], found.correction_positions[idx], targets)
            corrected = int(near.sum())
        actions = demonstrated_actions(a.positions, targets, deployment.limits.action_type)
        ep = EpisodeData(found.path, found.key, span, frames, found.joint_positions[pick],
                         a.frames, actions, a.dropped, corrected, targets,
                         found.frame_times[frames],
                         kinds=([found.frame_kinds[i] for i in frames]
                                if found.frame_kinds else None))
        out.append(ep)
    return out


def export_lerobot(paths, params, out, settings=None, camera='observation.images.front',
                   units='deg', fps=None, log=print):
    """Recorded episodes (bags or datasets) -> a LeRobotDataset v3.0 folder at ``out``: the
    frames that ``train episodes`` labels (a joint state and a demonstrated command within
    ``tolerance``), their joint states and demonstrated targets (not the parameter file's
    delta actions: LeRobot's ``action`` is the leader arm's position), the instruction, the
    outcome (``next.success``, written when every episode's is known) and, from a simulated
    arm, the kind of each frame. Frames are decoded and encoded one episode at a time. fps:
    the recording's (frames per second over the episodes, rounded) unless given. Returns
    info.json's content."""
    from aura_ros.train.lerobot_format import ExportEpisode, write_dataset
    settings = settings or Settings()
    setup = command_setup(params)
    episodes, summary = read_recordings(paths, setup, settings, log)
    if fps is None:
        spans = [(ep.times[-1] - ep.times[0], len(ep.times) - 1) for ep in episodes
                 if len(ep.times) > 1]
        seconds, periods = (sum(x) for x in zip(*spans)) if spans else (0.0, 0)
        fps = int(round(periods / seconds)) if seconds > 0 else 30
    bar = tqdm(total=sum(len(ep.kept) for ep in episodes), desc='frames', unit='frame',
               disable=not settings.progress)

    def stream():
        """ExportEpisodes in order, each yielded once its last labelled frame is decoded."""
        by_source = {}
        for ep in episodes:
            by_source.setdefault(ep.bag, []).append(ep)
        for source, eps in by_source.items():
            owner = {int(ep.frames[k]): (ep, j) for ep in eps for j, k in enumerate(ep.kept)}
            pixels = {}
            for i, rgb in source_frames(source, settings, owner):
                ep, j = owner[i]
                pixels.setdefault(id(ep), {})[j] = rgb
                bar.update(1)
                if len(pixels[id(ep)]) < len(ep.kept):
                    continue
                frames = pixels.pop(id(ep))
                yield ExportEpisode(np.stack([frames[j] for j in range(len(ep.kept))]),
                                    ep.positions_all[ep.kept], ep.targets,
                                    ep.span.instruction, ep.span.success,
                                    [ep.kinds[k] for k in ep.kept] if ep.kinds else None)
            if pixels:
                raise RecordingError(f'{source}: frames of {len(pixels)} episode(s) could not '
                                     f'be read back (the recording changed during the run?)')

    found = {k for ep in episodes for k in (ep.kinds or [])}
    known = all(ep.span.success is not None for ep in episodes)
    try:
        info = write_dataset(out, stream(), fps, setup.joint_names, camera, units,
                             kind_names=sorted(found | {''}) if found else [],
                             outcomes_known=known)
    finally:
        bar.close()
    log(f"wrote {out}: {info['total_episodes']} episodes, {info['total_frames']} frames at "
        f"{fps} fps ({summary['frames_dropped_unsynced']} frames without a joint state or "
        f'command left out)' + ('' if known else '; some outcomes are unknown (no END event): '
                                'next.success not written'))
    return info


# ---- 2. features (cached) --------------------------------------------------------------------
def check_cache_dir(cache_dir, deployment):
    """Create or reuse the cache folder; refuse one that holds another backbone's features."""
    cache_dir = Path(cache_dir)
    marker = cache_dir / 'backbone.json'
    mine = {'key': deployment.key, 'adapter': deployment.block.get('adapter'),
            'model_path': str(deployment.block.get('model_path')),
            'image_size': deployment.image_size, 'crop': deployment.crop}
    if marker.is_file():
        theirs = json.loads(marker.read_text())
        if theirs.get('key') != deployment.key:
            raise RecordingError(
                f"{cache_dir} holds features of another backbone ({theirs.get('adapter')} "
                f"{theirs.get('model_path')}, key {theirs.get('key')}; this run: "
                f"{mine['adapter']} {mine['model_path']}, key {deployment.key}): use another "
                f'--out or --cache-dir, or delete it')
    else:
        cache_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(mine, indent=2) + '\n')
    return cache_dir


def episode_seed(bag_key, index):
    return int.from_bytes(hashlib.sha256(f'{bag_key}/{index}'.encode()).digest()[:4], 'little')


def cache_path(cache_dir, ep):
    return Path(cache_dir) / ep.bag_key / f'episode_{ep.span.index:05d}.safetensors'


def extract_features(episodes, deployment, settings, cache_dir):
    """Fill each episode's features/base (all its frames) from the cache or the backbone.
    Returns {'frames': n computed, 'seconds': s, 'frames_per_s': f, 'cached_episodes': n}."""
    from safetensors.torch import load_file, save_file

    from aura_ros.imaging import crop_resize
    from aura_ros.policy import PolicyRunner
    runner = PolicyRunner(deployment.backbone, None, deployment.limits)
    todo, cached = {}, 0
    for ep in episodes:
        path = cache_path(cache_dir, ep)
        if path.is_file():
            data = load_file(str(path))
            if len(data['features']) == len(ep.frames):
                ep.features, ep.base = data['features'], data['base']
                cached += 1
                continue
        todo.setdefault(ep.bag, []).append(ep)
    total = sum(len(ep.frames) for eps in todo.values() for ep in eps)
    computed, seconds = 0, 0.0
    bar = tqdm(total=total, desc='backbone features', unit='frame',
               disable=not settings.progress or total == 0)
    for bag, eps in todo.items():
        owner = {}
        for ep in eps:
            for k, frame_index in enumerate(ep.frames):
                owner[int(frame_index)] = (ep, k)
        current = None
        for i, rgb in source_frames(bag, settings, owner):
            ep, k = owner[i]
            if ep is not current:
                current = ep
                runner.reset(episode_seed=episode_seed(ep.bag_key, ep.span.index))
                feats, bases = [], []
                instruction = ep.span.instruction or deployment.instruction
            t0 = time.perf_counter()
            frame = np.array(crop_resize(rgb, deployment.image_size, deployment.crop))
            step = runner.step(frame, ep.positions_all[k], instruction)
            seconds += time.perf_counter() - t0
            feats.append(step.features.detach().float())
            bases.append(torch.as_tensor(step.base_action, dtype=torch.float32))
            computed += 1
            bar.update(1)
            if k == len(ep.frames) - 1:     # the episode is complete: cache it
                ep.features, ep.base = torch.stack(feats), torch.stack(bases)
                path = cache_path(cache_dir, ep)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix('.tmp')
                save_file({'features': ep.features.contiguous(), 'base': ep.base.contiguous()},
                          str(tmp))
                tmp.replace(path)
        missing = [ep for ep in eps if ep.features is None]
        if missing:
            raise BagError(f'{bag}: frames of episode {missing[0].span.index} could not be read '
                           f'back (the bag changed during the run?)')
    bar.close()
    return {'frames': computed, 'seconds': seconds,
            'frames_per_s': (computed / seconds) if seconds else None,
            'cached_episodes': cached, 'computed_episodes': len(episodes) - cached}


# ---- 3. train and 4. report -----------------------------------------------------------------
def feature_episodes(episodes):
    from aura_ros.train.memory_fit import FeatureEpisode
    return [FeatureEpisode(ep.features[ep.kept], ep.base[ep.kept],
                           torch.as_tensor(ep.actions, dtype=torch.float32))
            for ep in episodes if len(ep.kept)]


def split(episodes, val_fraction, seed):
    """(train, val) by episode, seeded; at least one of each when there are two or more."""
    order = np.random.default_rng(seed).permutation(len(episodes))
    n_val = int(round(val_fraction * len(episodes)))
    if len(episodes) >= 2:
        n_val = min(max(n_val, 1), len(episodes) - 1)
    else:
        n_val = 0
    val = sorted(order[:n_val].tolist())
    train = sorted(order[n_val:].tolist())
    return [episodes[i] for i in train], [episodes[i] for i in val]


CUE_KINDS = ('cue_onset', 'cue_continued', 'reshown_cue', 'switch_cue')
WRITE_RATE_WARNING = 0.2      # a selective gate writes on far fewer frames than this
FEW_EPISODES = 50             # the recipe's smallest tested dataset (the learning curve)
CLOSED_GATE = 0.1             # writes per episode below which a gate counts as closed
MEANINGS = {
    'action_std': 'the unit of the training errors and of the write price (per action '
                  "dimension): the backbone block's action_std, or the recorded actions' std",
    'action_mse': 'mean squared error (rad^2 per joint) of the actions taken against the '
                  'demonstrated ones, over every labelled validation frame',
    'action_mse_memory_frames': 'the same over the frames after the first cue on which no cue '
                                'is shown (delay, distractor, go): where only a memory can know '
                                'the target (needs FrameTruth in the recordings, a sim\'s)',
    'writes_per_episode': 'memory writes per validation episode (the gate closed at 0.5)',
    'write_rate': 'share of validation frames on which the memory wrote',
    'write_probability': 'per FrameTruth kind: frames of that kind, writes on them, and their '
                         'ratio p (a selective gate writes cue_onset frames, little else)',
    'train_seconds': 'wall-clock seconds each arm took to train (features already extracted)',
    'reference arms': 'cue_oracle, first_frame: always_write memories trained and validated '
                      'writing exactly on their schedule (FrameTruth); their checkpoints only '
                      'mean that with the schedule forced, as a sim can (not on a robot)',
}


def evaluate(memory, data, kinds=None):
    """Validation: mean squared action error per joint-step, writes per episode, the gate's
    trace of each episode, and (``kinds``: each episode's FrameTruth kinds, or None) the error
    on memory frames and the write probability per kind of frame."""
    from aura_ros.train.memory_fit import forced_writes, padded
    feats, base, target, mask = padded(data)
    forced = forced_writes(data, feats.shape[1])         # a reference arm's schedule
    with torch.no_grad():
        if memory is None:
            actions, writes, probs = base, torch.zeros(mask.shape), torch.zeros(mask.shape)
        else:
            out = memory.forward_sequence(feats, base, gate_mode='hard', **(
                {} if forced is None else {'forced_writes': forced}))
            actions, writes, probs = out.actions, out.writes, out.write_prob
    err = ((actions - target) ** 2).mean(-1)
    result = {'action_mse': float(err[mask].mean()),
              'writes_per_episode': float((writes * mask).sum(1).mean()),
              'write_rate': float(writes[mask].mean()),
              'trace': [{'write_probability': probs[i, :int(mask[i].sum())].tolist(),
                         'wrote': writes[i, :int(mask[i].sum())].tolist()}
                        for i in range(min(len(data), 4))]}
    if kinds is not None:
        memory_frames, per_kind = torch.zeros(mask.shape, dtype=torch.bool), {}
        for i, ep_kinds in enumerate(kinds):
            onsets = [t for t, k in enumerate(ep_kinds) if k == 'cue_onset']
            for t, kind in enumerate(ep_kinds):
                memory_frames[i, t] = bool(onsets) and t > onsets[0] and kind not in CUE_KINDS
                c = per_kind.setdefault(kind or 'unknown', [0, 0])
                c[0] += int(writes[i, t] > 0)
                c[1] += 1
        result['action_mse_memory_frames'] = (float(err[memory_frames].mean())
                                              if memory_frames.any() else None)
        result['write_probability'] = {k: {'frames': n, 'writes': w, 'p': w / n}
                                       for k, (w, n) in sorted(per_kind.items())}
    return result


def report_warnings(report):
    """What a reader of report.json must not miss: too few episodes, a gate that writes on
    many frames or (almost) never, and a memory that does not beat no memory where memory
    matters."""
    out, n = [], report['episodes']['total']
    validation = report['validation']
    aura, none = validation.get('aura', {}), validation.get('no_memory', {})
    if n < FEW_EPISODES:
        out.append(f'{n} episodes: fewer than {FEW_EPISODES}, the smallest the default recipe '
                   f'was tested with; the validation numbers below rest on '
                   f"{report['episodes']['validation']} episodes")
    if aura.get('write_rate', 0.0) > WRITE_RATE_WARNING:
        out.append(f"the AURA gate writes on {100 * aura['write_rate']:.0f}% of validation "
                   f'frames (more than {100 * WRITE_RATE_WARNING:.0f}%): not selective; record '
                   f'more episodes or check the demonstrations')
    for arm in GATED_KINDS:
        writes = validation.get(arm, {}).get('writes_per_episode')
        if writes is not None and writes < CLOSED_GATE:
            out.append(f'the {arm} gate is closed: {writes:.2f} writes per validation episode '
                       f'(fewer than {CLOSED_GATE}): its memory is never written, the arm acts '
                       f'as no_memory')
    if aura and none:
        key = ('action_mse_memory_frames' if aura.get('action_mse_memory_frames') is not None
               and none.get('action_mse_memory_frames') is not None else 'action_mse')
        where = ('on memory frames (after the cue, none shown)' if key.endswith('frames')
                 else 'over all frames (no FrameTruth in the recordings: memory frames unknown)')
        if aura[key] >= none[key]:
            out.append(f"AURA's validation action error {where} ({aura[key]:.4g}) is not below "
                       f"no_memory's ({none[key]:.4g}): the memory does not help where it "
                       f'should')
    return out


def forced_schedule(arm, kinds):
    """(T,) the writes of a FORCED_ARMS arm on an episode of FrameTruth ``kinds``."""
    from aura_ros.sim.arm import NEWS_KINDS
    if arm == 'first_frame':
        return torch.arange(len(kinds)) == 0
    return torch.tensor([k in NEWS_KINDS for k in kinds])


@dataclass
class Prepared:
    """Recordings read, features extracted, split: what every arm trains and validates on."""
    deployment: Deployment
    episodes: list
    summary: dict
    extraction: dict
    train_eps: list
    val_eps: list
    train_data: list                 # FeatureEpisodes of the train split
    val_data: list
    train_kinds: list | None         # FrameTruth kinds of each labelled frame, or None
    val_kinds: list | None

    @property
    def action_std(self):
        """The unit of the action errors (and so of the write price): the backbone's action
        std where its parameter file gives one (the statistics it was trained with), else the
        std of the recorded actions of the train split (a remote or LeRobot policy: in
        radians, a write price of 5 would otherwise be 5 rad^2 and no write would pay)."""
        cfg = self.deployment.backbone.config
        if cfg.action_std:
            return list(cfg.action_std)
        std = torch.cat([ep.expert for ep in self.train_data]).std(0)
        return torch.where(std > 1e-6, std, torch.ones_like(std)).tolist()  # constant: 1


def _kinds(eps):
    labelled = [ep for ep in eps if len(ep.kept)]        # as feature_episodes keeps them
    if labelled and all(ep.kinds for ep in labelled):
        return [[ep.kinds[i] for i in ep.kept] for ep in labelled]
    return None


def prepare(paths, params, out, settings, log=print):
    """Steps 1-2 and the split (module docstring)."""
    deployment = load_deployment(params)
    episodes, summary = read_recordings(paths, deployment, settings, log)
    log(f"{len(episodes)} episodes, {summary['frames']} frames "
        f"({summary['frames_dropped_unsynced']} dropped unsynchronised) from "
        f"{len(summary['bags'])} bag(s)")
    cache_dir = check_cache_dir(settings.cache_dir or Path(out) / 'features', deployment)
    extraction = extract_features(episodes, deployment, settings, cache_dir)
    train_eps, val_eps = split(episodes, settings.val_fraction, settings.seed)
    train_data, val_data = feature_episodes(train_eps), feature_episodes(val_eps)
    if not train_data:
        raise RecordingError('no training episode has labelled frames')
    return Prepared(deployment, episodes, summary, extraction, train_eps, val_eps, train_data,
                    val_data, _kinds(train_eps), _kinds(val_eps))


def with_schedule(arm, data, kinds):
    """Copies of FeatureEpisodes ``data`` carrying the forced writes of ``arm`` (FORCED_ARMS)."""
    from dataclasses import replace
    if kinds is None:
        raise RecordingError(f'the {arm} arm needs FrameTruth in the recordings (where the '
                             f'cues are: a sim records it on sim/frame_truth)')
    return [replace(d, writes=forced_schedule(arm, k)) for d, k in zip(data, kinds)]


def fit_arm(arm, prepared, settings, rate=None):
    """One arm trained on the train split: a memory kind, or a FORCED_ARMS reference (an
    always_write memory trained writing on its schedule). ``rate``: AURA's write rate, the
    budget arms' budget."""
    from aura_ros.train.memory_fit import fit_memory
    data, kind = prepared.train_data, arm
    if arm in FORCED_ARMS:
        data, kind = with_schedule(arm, data, prepared.train_kinds), 'always_write'
    return fit_memory(kind, data, prepared.action_std, steps=settings.steps, seed=settings.seed,
                      write_rate=rate or 0.1, progress=settings.progress)


def validate_arm(arm, memory, prepared):
    """``evaluate`` on the validation split (a FORCED_ARMS arm writing on its schedule)."""
    if not prepared.val_data:
        return {}
    data = prepared.val_data
    if arm in FORCED_ARMS:
        data = with_schedule(arm, data, prepared.val_kinds)
    return evaluate(memory, data, prepared.val_kinds)


def train_from_recordings(paths, params, out, settings=None, log=print):
    """The whole pipeline (module docstring); returns the report dict."""
    from aura_ros.train.memory_fit import write_rate_on
    settings = settings or Settings()
    t_start = time.monotonic()
    out = Path(out)
    prepared = prepare(paths, params, out, settings, log)
    arms = ['aura'] + [a for a in settings.arms if a != 'aura']
    memories, results, rate, seconds = {}, {}, None, {}
    for arm in arms:
        t0 = time.monotonic()
        memory = fit_arm(arm, prepared, settings, rate)
        seconds[arm] = time.monotonic() - t0
        if arm == 'aura':
            rate = write_rate_on(memory, prepared.train_data)
        memories[arm] = memory
        results[arm] = validate_arm(arm, memory, prepared)
    base = evaluate(None, prepared.val_data, prepared.val_kinds) if prepared.val_data else {}
    episodes, summary, deployment = prepared.episodes, prepared.summary, prepared.deployment
    train_eps, val_eps = prepared.train_eps, prepared.val_eps
    report = {
        'params': str(params), 'bags': summary['bags'], 'skipped_bags': summary['skipped_bags'],
        'episodes': {'total': len(episodes), 'train': len(train_eps), 'validation': len(val_eps),
                     'successful': sum(bool(e.span.success) for e in episodes),
                     'outcome_unknown': sum(e.span.success is None for e in episodes)},
        'frames': summary['frames'], 'frames_labelled': int(sum(len(e.kept) for e in episodes)),
        'frames_corrected': int(sum(e.corrected for e in episodes)),
        'frames_dropped_unsynced': summary['frames_dropped_unsynced'],
        'dropped': summary['dropped'], 'warnings': summary['warnings'],
        'feature_extraction': prepared.extraction, 'backbone_key': deployment.key,
        'train_seconds': seconds,
        'action_type': deployment.limits.action_type,
        'action_std': prepared.action_std,
        'action_std_from': ('the backbone block' if deployment.backbone.config.action_std
                            else 'the recorded actions (train split)'),
        'settings': {'tolerance': settings.tolerance, 'action_lag': settings.action_lag,
                     'stamps': settings.stamps, 'val_fraction': settings.val_fraction,
                     'steps': settings.steps, 'seed': settings.seed},
        'validation': {'base': {k: v for k, v in base.items() if k != 'trace'},
                       **{k: {kk: vv for kk, vv in r.items() if kk != 'trace'}
                          for k, r in results.items()}},
        'meanings': MEANINGS,
    }
    for line in report_warnings(report):
        report['warnings'].append(line)
        log(f'warning: {line}')
    # every output at the end: a failed run leaves no half-written checkpoint
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for kind, memory in memories.items():
        name = 'memory.safetensors' if kind == 'aura' else f'memory_{kind}.safetensors'
        memory.save(out / name)
        files[kind] = name
    checkpoint = (out / 'memory.safetensors').resolve()
    snippet = ('# load the memory trained from your recordings (add to your parameter file)\n'
               '/**/policy_node:\n  ros__parameters:\n    memory:\n'
               f'      checkpoint: {checkpoint}\n')
    (out / 'params.yaml').write_text(snippet)
    report.update(files=files, params_lines=snippet, elapsed_s=time.monotonic() - t_start)
    plot(report, results, base, out)
    (out / 'report.json').write_text(json.dumps(report, indent=2) + '\n')
    return report


def plot(report, results, base, out):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if not results or not base:
        return
    names = ['base'] + list(results)
    mse = [base['action_mse']] + [results[k]['action_mse'] for k in results]
    writes = [0.0] + [results[k]['writes_per_episode'] for k in results]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.bar(names, mse, color=['grey'] + ['C0'] * len(results))
    a.set_ylabel('validation action MSE (rad$^2$)')
    b.bar(names, writes, color=['grey'] + ['C1'] * len(results))
    b.set_ylabel('writes per validation episode')
    for ax in (a, b):
        ax.tick_params(axis='x', rotation=20)
    fig.suptitle(f"{report['episodes']['train']} train / {report['episodes']['validation']} "
                 f'validation episodes')
    fig.tight_layout()
    fig.savefig(out / 'validation.png', dpi=100)
    plt.close(fig)
    traces = results.get('aura', {}).get('trace', [])
    if traces:
        fig, axes = plt.subplots(len(traces), 1, figsize=(10, 1.6 * len(traces)), sharex=True,
                                 squeeze=False)
        for ax, tr in zip(axes[:, 0], traces):
            p = np.asarray(tr['write_probability'])
            ax.plot(p, color='C0', lw=1)
            w = np.flatnonzero(np.asarray(tr['wrote']) > 0.5)
            ax.scatter(w, p[w], color='C3', s=14, zorder=3, label='write')
            ax.set_ylim(-0.05, 1.05)
            ax.set_ylabel('p(write)')
        axes[0, 0].legend(loc='upper right')
        axes[-1, 0].set_xlabel('labelled frame')
        fig.suptitle('AURA gate on validation episodes')
        fig.tight_layout()
        fig.savefig(out / 'gate_activity.png', dpi=100)
        plt.close(fig)
