"""LeRobotDataset v3.0 folders <-> the recorder's episodes (no ROS, no torch).

LeRobot (huggingface/lerobot) stores demonstrations as a folder:

    meta/info.json                          codebase_version "v3.0", fps, features (dtype, shape,
                                            names), path templates
    meta/tasks.parquet                      task string -> task_index
    meta/episodes/chunk-XXX/file-YYY.parquet  one row per episode: length, its rows in the data
                                            files (dataset_from_index .. _to_index), for each
                                            camera its video file and from/to timestamp in it,
                                            its tasks, per-episode statistics
    data/chunk-XXX/file-YYY.parquet         one row per frame: observation.state, action,
                                            timestamp (s from the episode's start),
                                            frame_index, episode_index, index, task_index
    videos/<camera key>/chunk-XXX/file-YYY.mp4  the frames of many episodes, one after another
                                            (LeRobot's default codec: AV1, libsvtav1)

Reading (``scan_dataset``, ``iter_dataset_frames``): a dataset becomes the same ``BagScan`` a
bag does, so ``train episodes`` treats both alike. Per frame: the joint state is the row's
``observation.state``, the demonstration its ``action`` (for an SO-101 recorded by
``lerobot-record`` the leader arm's joint positions: a target, as a teleop command in a bag),
both on the frame's own time, so every frame is matched. Times: episode e's frames lie at
``offset_e + timestamp`` with offsets that keep episodes apart (a dataset has one clock per
episode). Units: LeRobot's SO-101 follower reports degrees (``use_degrees``, its default; the
gripper in 0..100); ``units='deg'`` converts to the radians the parameter files use. Nothing in
a dataset says its units: a gripper (0..100) is scaled like a joint, and a dataset recorded
with ``use_degrees=False`` (LeRobot's -100..100 range, older SO-100/SO-101 datasets) is not in
degrees at all -- choose the joints and units that match how it was recorded. Joints
are matched by name (``shoulder_pan.pos`` -> ``shoulder_pan``), or by position when the
dataset names none and the widths agree. Pixels are decoded with PyAV, episode by episode,
each frame taken at ``from_timestamp + timestamp`` within half a frame period.

Writing (``write_dataset``): episodes (frames, joint states, demonstrated commands,
instruction, success, optional per-frame kinds of a simulated arm) become a v3.0 folder with
LeRobot's file layout, statistics and metadata, so LeRobot's loader, visualiser and training
scripts read it (checked with LeRobot's own ``LeRobotDataset``: bench/lerobot/check_export.py).
Beside LeRobot's own columns: ``next.success`` (bool, true on the last frame of a successful
episode, as LeRobot's simulation datasets mark it) and ``aura_ros.frame_kind`` (int64, an
index into its ``names``: the FrameTruth kind of each frame, when the recording has one).
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aura_ros.train.recordings import RecordingError

VERSION = 'v3.0'
INFO = 'meta/info.json'
TASKS = 'meta/tasks.parquet'
EPISODES = 'meta/episodes/chunk-000/file-000.parquet'
DATA = 'data/chunk-000/file-000.parquet'
VIDEO = 'videos/{key}/chunk-000/file-000.mp4'
SUCCESS = 'next.success'
KIND = 'aura_ros.frame_kind'
GAP_S = 10.0        # time between episodes on the scan's clock (tolerance is far smaller)
UNITS = ('deg', 'rad')
STAT_QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)


class DatasetError(RecordingError):
    """A LeRobot dataset that cannot be read; the message says why."""


@dataclass
class DatasetKeys:
    camera: str = ''                 # '' = the dataset's only camera
    state: str = 'observation.state'
    action: str = 'action'
    units: str = 'deg'               # 'deg' (LeRobot's SO-101) or 'rad'

    def __post_init__(self):
        if self.units not in UNITS:
            raise ValueError(f"units must be one of {UNITS}, got {self.units!r}")


def is_dataset(path):
    """True for a LeRobot dataset folder (it has meta/info.json)."""
    return (Path(path) / INFO).is_file()


def _need(module):
    try:
        return __import__(module, fromlist=['_'])
    except ImportError as exc:
        raise DatasetError(f'reading LeRobot datasets needs {module.split(".")[0]} '
                           f'(pip install -r requirements.txt)') from exc


def _read_parquet(path):
    pq = _need('pyarrow.parquet')
    try:
        return pq.read_table(str(path)).to_pydict()
    except Exception as exc:  # noqa: BLE001 - any reader failure is a damaged file to the user
        raise DatasetError(f'{path}: cannot read ({type(exc).__name__}: {exc})') from exc


def _parquets(root, pattern):
    files = sorted(Path(root).glob(pattern))
    if not files:
        raise DatasetError(f'{root}: no {pattern} files')
    table = {}
    for f in files:
        part = _read_parquet(f)
        rows = {len(v) for v in part.values()}
        if table and set(part) != set(table):
            raise DatasetError(f'{f}: other columns than {files[0].name} '
                               f'({sorted(set(part) ^ set(table))})')
        if len(rows) > 1:
            raise DatasetError(f'{f}: columns of different lengths {sorted(rows)}')
        for k, v in part.items():
            table.setdefault(k, []).extend(v)
    return table


def read_info(path):
    path = Path(path)
    try:
        info = json.loads((path / INFO).read_text())
    except FileNotFoundError:
        raise DatasetError(f'{path}: not a LeRobot dataset (no {INFO})') from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f'{path / INFO}: not JSON ({exc})') from None
    missing = [k for k in ('codebase_version', 'fps', 'features') if k not in info]
    if missing:
        raise DatasetError(f'{path / INFO}: no {", ".join(missing)}')
    version = str(info.get('codebase_version', '?'))
    if not version.startswith('v3'):
        raise DatasetError(
            f'{path}: LeRobotDataset {version}; this reader takes v3.0 (convert a v2.1 dataset '
            f'with LeRobot: python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 '
            f'--repo-id=... --root=...)')
    return info


def cameras(info):
    return [k for k, f in info['features'].items() if f.get('dtype') in ('video', 'image')]


def _names(feature):
    names = feature.get('names')
    if isinstance(names, dict):          # v2-style {'motors': [...]}
        names = next(iter(names.values()), None)
    return [str(n) for n in names] if names else []


def joint_columns(feature, joint_names, what):
    """Indices of ``joint_names`` within a dataset feature (see the module)."""
    width = int(feature['shape'][0])
    names = [n[:-4] if n.endswith('.pos') else n for n in _names(feature)]
    if names:
        missing = [j for j in joint_names if j not in names]
        if missing:
            raise DatasetError(f'{what} names {names}: the parameter file\'s joints {missing} '
                               f'are missing')
        return [names.index(j) for j in joint_names]
    if width != len(joint_names):
        raise DatasetError(f'{what} has {width} unnamed values, the parameter file commands '
                           f'{len(joint_names)} joints')
    return list(range(width))


def resolve_keys(info, keys, where):
    features = info['features']
    cams = cameras(info)
    camera = keys.camera
    if not camera:
        if len(cams) != 1:
            raise DatasetError(f'{where}: {len(cams)} cameras ({", ".join(cams) or "none"}): '
                               f'choose one with --camera-key')
        camera = cams[0]
    elif camera not in cams:
        raise DatasetError(f'{where}: no camera {camera!r}; cameras: {", ".join(cams) or "none"}')
    if features[camera].get('dtype') != 'video':
        raise DatasetError(f'{where}: camera {camera} is stored as images; this reader takes '
                           f'video cameras (LeRobot\'s default)')
    for key, what in ((keys.state, '--state-key'), (keys.action, '--action-key')):
        if key not in features:
            listed = ', '.join(k for k in features if k not in cams)
            raise DatasetError(f'{where}: no feature {key!r} ({what}); features: {listed}')
        if len(features[key].get('shape', ())) != 1:
            raise DatasetError(f'{where}: {key} has shape {features[key].get("shape")}, '
                               f'expected one vector per frame')
    return camera


def dataset_key(path, keys=None, joint_names=None):
    """Identity of a dataset as read, for the feature cache: its files' names and sizes, the
    hash of info.json and the data files' first MiB, and what is read of it (camera, state,
    action, units, joints): another camera of the same dataset is another recording."""
    import hashlib
    h = hashlib.sha256()
    root = Path(path)
    for f in sorted(root.rglob('*')):       # LeRobot's own files (meta/, data/, videos/)
        if f.is_file() and f.suffix in ('.json', '.parquet', '.mp4') and \
                f.relative_to(root).parts[0] in ('meta', 'data', 'videos'):
            h.update(str(f.relative_to(root)).encode())
            h.update(str(f.stat().st_size).encode())
            if f.suffix != '.mp4':
                with open(f, 'rb') as fh:
                    h.update(fh.read(1 << 20))
    read = keys or DatasetKeys()
    h.update(json.dumps([read.camera, read.state, read.action, read.units,
                         list(joint_names or [])]).encode())
    return h.hexdigest()[:16]


def episode_rows(data):
    """[(episode_index, its data rows in frame order)], episodes ascending: the one frame
    order of ``scan_dataset`` and ``iter_dataset_frames`` (frame k of the scan is the k-th)."""
    ep_col = np.asarray(data['episode_index'], np.int64)
    order = np.lexsort((np.asarray(data['frame_index']), ep_col))
    return [(e, order[ep_col[order] == e]) for e in sorted(set(ep_col.tolist()))]


def scan_dataset(path, keys=None, joint_names=None):
    """A LeRobot dataset as a ``BagScan`` (everything but the pixels; see the module)."""
    from aura_ros.train.bags import BagScan, EpisodeSpan
    keys = keys or DatasetKeys()
    path = Path(path)
    info = read_info(path)
    resolve_keys(info, keys, path)
    features = info['features']
    data = _parquets(path, 'data/*/*.parquet')
    episodes = _parquets(path, 'meta/episodes/*/*.parquet')
    for col in ('episode_index', 'frame_index', 'timestamp', keys.state, keys.action):
        if col not in data:
            raise DatasetError(f'{path}: the data files have no {col!r} column')
    scale = np.pi / 180 if keys.units == 'deg' else 1.0
    names = list(joint_names or [])
    cols_q = joint_columns(features[keys.state], names, keys.state) if names else None
    cols_a = joint_columns(features[keys.action], names, keys.action) if names else None
    q = np.asarray(data[keys.state], np.float64)
    a = np.asarray(data[keys.action], np.float64)
    if q.ndim != 2 or a.ndim != 2:
        raise DatasetError(f'{path}: {keys.state} or {keys.action} is not one vector per frame')
    q = (q[:, cols_q] if cols_q else q) * scale
    a = (a[:, cols_a] if cols_a else a) * scale
    ep_col = np.asarray(data['episode_index'], np.int64)
    if len(ep_col) == 0:
        raise DatasetError(f'{path}: no frames')
    ts = np.asarray(data['timestamp'], np.float64)
    success = np.asarray(data[SUCCESS], bool).reshape(len(ts), -1)[:, 0] \
        if SUCCESS in data else None
    kinds_col = None
    if KIND in data and KIND in features:
        vocab = _names(features[KIND])
        kinds_col = [vocab[int(np.ravel(k)[0])] for k in data[KIND]]
    tasks = dict(zip(episodes['episode_index'], episodes.get('tasks', [[]] * len(ep_col))))
    frame_times, rows, spans, offset = [], [], [], 0.0
    for e, mine in episode_rows(data):
        t = offset + ts[mine]
        if np.any(np.diff(t) <= 0):
            raise DatasetError(f'{path}: episode {e}: timestamps do not increase with '
                               f'frame_index')
        frame_times.append(t)
        rows.append(mine)
        ok = bool(success[mine].any()) if success is not None else None
        task = tasks.get(e) or ['']
        spans.append(EpisodeSpan(int(e), float(t[0]) - 1e-6, float(t[-1]) + 1e-6, ok, int(e),
                                 str(task[0])))
        offset = float(t[-1]) + GAP_S
    rows = np.concatenate(rows)
    times = np.concatenate(frame_times)
    result = BagScan(str(path), dataset_key(path, keys, names), times, times.copy(), q[rows],
                     times.copy(),
                     a[rows], np.zeros(0), np.zeros((0, 0)))
    result.episodes = spans
    result.frame_kinds = [kinds_col[r] for r in rows] if kinds_col else []
    return result


def _decode(video, want_times, fps, where):
    """{time: (H, W, 3) uint8} of the frames nearest ``want_times`` (s) in ``video``."""
    av = _need('av')
    want = np.asarray(sorted(want_times), np.float64)
    out, tol = {}, 0.5 / fps
    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            start = want[0] - tol
            if start > 1.0:
                container.seek(int(start / stream.time_base), stream=stream, backward=True,
                               any_frame=False)
            for frame in container.decode(stream):
                t = float(frame.time)
                if t > want[-1] + tol:
                    break
                i = int(np.argmin(np.abs(want - t)))
                if abs(want[i] - t) <= tol:
                    out[want[i]] = frame.to_ndarray(format='rgb24')
    except FileNotFoundError:
        raise DatasetError(f'{where}: video {video} is missing') from None
    except Exception as exc:  # noqa: BLE001 - a broken file, an unknown codec
        raise DatasetError(f'{where}: cannot decode {video} ({type(exc).__name__}: {exc})'
                           ) from exc
    missing = [t for t in want if t not in out]
    if missing:
        raise DatasetError(f'{where}: {video} has no frame at {missing[0]:.3f} s (and '
                           f'{len(missing) - 1} more): a truncated or re-encoded video?')
    return out


def iter_dataset_frames(path, keys=None, wanted=None):
    """(frame index, (H, W, 3) uint8 RGB) in ``scan_dataset``'s frame order; with ``wanted``
    (a container of indices), only those frames are decoded."""
    keys = keys or DatasetKeys()
    path = Path(path)
    info = read_info(path)
    camera = resolve_keys(info, keys, path)
    fps = float(info['fps'])
    data = _parquets(path, 'data/*/*.parquet')
    episodes = _parquets(path, 'meta/episodes/*/*.parquet')
    template = info.get('video_path') or 'videos/{video_key}/chunk-{chunk_index:03d}/' \
                                         'file-{file_index:03d}.mp4'
    ts = np.asarray(data['timestamp'], np.float64)
    rows = {e: i for i, e in enumerate(episodes['episode_index'])}
    index = 0
    for e, mine in episode_rows(data):
        numbers = range(index, index + len(mine))
        index += len(mine)
        todo = [k for k, n in enumerate(numbers) if wanted is None or n in wanted]
        if not todo:
            continue
        if e not in rows:
            raise DatasetError(f'{path}: episode {e} is not in meta/episodes')
        r = rows[e]
        col = f'videos/{camera}/'
        needed = [col + c for c in ('chunk_index', 'file_index', 'from_timestamp')]
        if any(c not in episodes for c in needed):
            raise DatasetError(f'{path}: meta/episodes has no {needed} columns for {camera}')
        video = path / template.format(video_key=camera,
                                       chunk_index=episodes[col + 'chunk_index'][r],
                                       file_index=episodes[col + 'file_index'][r])
        start = float(episodes[col + 'from_timestamp'][r])
        times = [start + ts[mine[k]] for k in todo]
        frames = _decode(video, times, fps, f'{path} episode {e}')
        for k, t in zip(todo, times):
            yield numbers[k], frames[t]


# ---- writing ----------------------------------------------------------------------------------
@dataclass
class ExportEpisode:
    frames: np.ndarray               # (F, H, W, 3) uint8 RGB
    state: np.ndarray                # (F, J) measured joint positions, rad
    action: np.ndarray               # (F, J) demonstrated joint targets, rad
    instruction: str = ''
    success: bool | None = None
    kinds: list | None = None        # (F,) FrameTruth kind per frame (a simulated arm's)


IMAGE_STAT_FRAMES = 100      # frames sampled per episode for image statistics (as LeRobot)
IMAGE_STAT_SIDE = 150        # ... downsampled to about this many pixels a side


def _stats(values, image=False):
    """LeRobot's per-feature statistics of (N, ...) values. Images: per channel in [0, 1],
    shaped (3, 1, 1) as LeRobot stores them, over at most IMAGE_STAT_FRAMES evenly spaced
    frames downsampled to about IMAGE_STAT_SIDE a side (LeRobot's compute_stats samples and
    downsamples too); ``count`` is the number of frames the statistics saw."""
    if image:
        frames = np.asarray(values)
        pick = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), IMAGE_STAT_FRAMES)
                                     ).round().astype(int))
        stride = max(1, max(frames.shape[1:3]) // IMAGE_STAT_SIDE)
        sample = frames[pick, ::stride, ::stride].astype(np.float32) / 255.0
        flat, count = sample.reshape(-1, 3), len(pick)            # (pixels, 3)
    else:
        v = np.asarray(values, np.float64)
        flat, count = v.reshape(len(v), -1), len(v)
    out = {'min': flat.min(0), 'max': flat.max(0), 'mean': flat.mean(0, dtype=np.float64),
           'std': flat.std(0, dtype=np.float64)}
    for q in STAT_QUANTILES:
        out[f'q{round(q * 100):02d}'] = np.quantile(flat, q, axis=0)
    shape = (3, 1, 1) if image else (-1,)
    stats = {k: np.asarray(x, np.float64).reshape(shape).tolist() for k, x in out.items()}
    stats['count'] = [int(count)]
    return stats


def _aggregate(per_episode):
    """Dataset statistics from per-episode ones (as LeRobot's aggregate_stats: min of mins,
    max of maxes, count-weighted mean and pooled std, count-weighted quantiles)."""
    counts = np.array([s['count'][0] for s in per_episode], np.float64)
    w = counts / counts.sum()

    def arr(key):
        return np.array([s[key] for s in per_episode], np.float64)
    mean = np.tensordot(w, arr('mean'), 1)
    var = np.tensordot(w, arr('std') ** 2 + arr('mean') ** 2, 1) - mean ** 2
    out = {'min': arr('min').min(0), 'max': arr('max').max(0), 'mean': mean,
           'std': np.sqrt(np.maximum(var, 0.0))}
    for q in STAT_QUANTILES:
        key = f'q{round(q * 100):02d}'
        out[key] = np.tensordot(w, arr(key), 1)
    stats = {k: v.tolist() for k, v in out.items()}
    stats['count'] = [int(counts.sum())]
    return stats


class _Video:
    """Frames appended as LeRobot's default video: AV1 (libsvtav1, crf 30, g 2), yuv420p, one
    frame per 1/fps, all episodes one after another in one file."""

    def __init__(self, path, fps):
        import os
        self.av = _need('av')
        path.parent.mkdir(parents=True, exist_ok=True)
        self.container = self.av.open(str(path), 'w')
        self.fps, self.stream, self.count = int(fps), None, 0
        # SVT-AV1 makes the thread that starts it SCHED_FIFO 99 where it may (as root): that
        # would leave this process real-time; the caller's scheduling is put back after each call
        self.scheduling = (os.sched_getscheduler(0), os.sched_getparam(0))

    def _restore(self):
        import os
        policy, param = self.scheduling
        if (os.sched_getscheduler(0), os.sched_getparam(0)) != self.scheduling:
            os.sched_setscheduler(0, policy, param)

    def add(self, frames):
        if self.stream is None:
            self.stream = self.container.add_stream('libsvtav1', rate=self.fps,
                                                    options={'g': '2', 'crf': '30',
                                                             'preset': '12'})
            self.stream.height, self.stream.width = frames.shape[1:3]
            self.stream.pix_fmt = 'yuv420p'
        for rgb in frames:
            frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24')
            frame.pts = self.count
            self.count += 1
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        self._restore()

    def close(self):
        try:
            if self.stream is not None:
                for packet in self.stream.encode():
                    self.container.mux(packet)
            self.container.close()
        finally:
            self._restore()


def write_dataset(out, episodes, fps, joint_names, camera='observation.images.front',
                  units='deg', robot_type=None, kind_names=None, outcomes_known=None):
    """Write ``episodes`` (ExportEpisode, a list or any iterable: frames are encoded as each
    episode comes, so a long recording never sits in memory) as a LeRobotDataset v3.0 folder at
    ``out``, which must not exist or be empty (written under ``out.partial``, renamed when
    complete). ``kind_names``: the vocabulary of per-frame kinds (None: from a list of
    episodes; empty: no kind column); ``outcomes_known``: write ``next.success`` (None: when
    every episode of a list has a known outcome; an unknown one would read back as a failure).
    Returns info.json's content. See the module for the columns."""
    pa, pq = _need('pyarrow'), _need('pyarrow.parquet')
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f'{out} exists and is not empty: choose a new --out')
    if units not in UNITS:
        raise ValueError(f"units must be one of {UNITS}, got {units!r}")
    if int(fps) != fps or fps <= 0:
        raise DatasetError(f'fps must be a positive whole number (LeRobot stores an int), '
                           f'got {fps}')
    fps = int(fps)
    if isinstance(episodes, (list, tuple)):
        if kind_names is None:
            found = {k for ep in episodes for k in (ep.kinds or [])}
            kind_names = sorted(found | {''}) if found else []
        if outcomes_known is None:
            outcomes_known = all(ep.success is not None for ep in episodes)
    kinds = list(kind_names or [])
    if kinds and '' not in kinds:
        kinds.append('')
    write_success = bool(outcomes_known)
    scale = 180 / np.pi if units == 'deg' else 1.0
    J = len(joint_names)
    partial = out.with_name(out.name + '.partial')
    if partial.exists():
        import shutil
        shutil.rmtree(partial)
    (partial / 'meta' / 'episodes' / 'chunk-000').mkdir(parents=True)
    (partial / 'data' / 'chunk-000').mkdir(parents=True)
    video = _Video(partial / VIDEO.format(key=camera), fps)
    tasks, cols, rows, image_stats, start, shape = [], {}, [], [], 0, None
    try:
        for e, ep in enumerate(episodes):
            n = len(ep.frames)
            if ep.frames.ndim != 4 or ep.frames.shape[3] != 3 or n == 0:
                raise DatasetError(f'episode {e}: frames of shape {ep.frames.shape}, expected '
                                   f'(F > 0, H, W, 3)')
            if shape is None:
                shape = ep.frames.shape[1:3]
            elif ep.frames.shape[1:3] != shape:
                raise DatasetError(f'episode {e}: frames of {ep.frames.shape[1:3]}, the first '
                                   f'episode had {shape}: one camera, one size')
            if ep.state.shape != (n, J) or ep.action.shape != (n, J):
                raise DatasetError(f'episode {e}: {n} frames, state {ep.state.shape}, action '
                                   f'{ep.action.shape}: expected ({n}, {J}) each')
            if ep.kinds and len(ep.kinds) != n:
                raise DatasetError(f'episode {e}: {n} frames, {len(ep.kinds)} frame kinds')
            if ep.instruction not in tasks:
                tasks.append(ep.instruction)
            part = {'observation.state': (ep.state * scale).astype(np.float32),
                    'action': (ep.action * scale).astype(np.float32),
                    'timestamp': (np.arange(n) / fps).astype(np.float32),
                    'frame_index': np.arange(n), 'episode_index': np.full(n, e),
                    'index': np.arange(start, start + n),
                    'task_index': np.full(n, tasks.index(ep.instruction))}
            if write_success:
                part[SUCCESS] = (np.arange(n) == n - 1) if ep.success else np.zeros(n, bool)
            if kinds:
                part[KIND] = np.array([kinds.index(k if k in kinds else '')
                                       for k in (ep.kinds or [''] * n)])
            for k, v in part.items():
                cols.setdefault(k, []).append(v)
            video.add(ep.frames)
            image_stats.append(_stats(ep.frames, True))
            row = {'episode_index': e, 'tasks': [ep.instruction], 'length': n,
                   'data/chunk_index': 0, 'data/file_index': 0,
                   'dataset_from_index': start, 'dataset_to_index': start + n,
                   f'videos/{camera}/chunk_index': 0, f'videos/{camera}/file_index': 0,
                   f'videos/{camera}/from_timestamp': start / fps,
                   f'videos/{camera}/to_timestamp': (start + n) / fps}
            for k, v in part.items():
                row.update({f'stats/{k}/{s}': x for s, x in _stats(v).items()})
            row.update({f'stats/{camera}/{s}': x for s, x in image_stats[-1].items()})
            row.update({'meta/episodes/chunk_index': 0, 'meta/episodes/file_index': 0})
            rows.append(row)
            start += n
    finally:
        video.close()
    if not rows:
        raise DatasetError('no episodes to export')
    H, W = shape
    columns = {k: np.concatenate(v) for k, v in cols.items()}
    features = {camera: {'dtype': 'video', 'shape': [H, W, 3],
                         'names': ['height', 'width', 'channels'],
                         'info': {'video.height': H, 'video.width': W, 'video.codec': 'av1',
                                  'video.pix_fmt': 'yuv420p', 'video.fps': fps,
                                  'video.channels': 3, 'has_audio': False, 'video.g': 2,
                                  'video.crf': 30, 'video.preset': 12,
                                  'video.fast_decode': 0, 'video.video_backend': 'pyav',
                                  'video.extra_options': {}, 'is_depth_map': False}},
                'observation.state': {'dtype': 'float32', 'shape': [J],
                                      'names': [f'{j}.pos' for j in joint_names]},
                'action': {'dtype': 'float32', 'shape': [J],
                           'names': [f'{j}.pos' for j in joint_names]},
                'timestamp': {'dtype': 'float32', 'shape': [1], 'names': None},
                'frame_index': {'dtype': 'int64', 'shape': [1], 'names': None},
                'episode_index': {'dtype': 'int64', 'shape': [1], 'names': None},
                'index': {'dtype': 'int64', 'shape': [1], 'names': None},
                'task_index': {'dtype': 'int64', 'shape': [1], 'names': None}}
    if write_success:
        features[SUCCESS] = {'dtype': 'bool', 'shape': [1], 'names': None}
    if kinds:
        features[KIND] = {'dtype': 'int64', 'shape': [1], 'names': kinds}
    info = {'codebase_version': VERSION, 'robot_type': robot_type,
            'total_episodes': len(rows), 'total_frames': start, 'total_tasks': len(tasks),
            'chunks_size': 1000, 'data_files_size_in_mb': 100, 'video_files_size_in_mb': 200,
            'fps': fps, 'splits': {'train': f'0:{len(rows)}'},
            'data_path': 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet',
            'video_path': 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4',
            'features': features}
    vector = pa.list_(pa.float32(), J)
    arrays = {k: (pa.array(list(v), type=vector) if v.ndim == 2 else pa.array(v))
              for k, v in columns.items()}
    pq.write_table(pa.table(arrays), partial / DATA)
    pq.write_table(pa.Table.from_pylist(rows), partial / EPISODES)
    # LeRobot reads the task string as the pandas index of tasks.parquet (as pandas writes it)
    pandas_meta = {'index_columns': ['task'], 'column_indexes': [], 'columns': [
        {'name': 'task_index', 'field_name': 'task_index', 'pandas_type': 'int64',
         'numpy_type': 'int64', 'metadata': None},
        {'name': 'task', 'field_name': 'task', 'pandas_type': 'unicode',
         'numpy_type': 'object', 'metadata': None}], 'attributes': {}}
    task_table = pa.table({'task_index': pa.array(range(len(tasks)), pa.int64()),
                           'task': pa.array(tasks, pa.string())})
    pq.write_table(task_table.replace_schema_metadata({'pandas': json.dumps(pandas_meta)}),
                   partial / TASKS)
    stats = {k: _stats(v) for k, v in columns.items()}
    stats[camera] = _aggregate(image_stats)
    (partial / 'meta' / 'stats.json').write_text(json.dumps(stats, indent=4) + '\n')
    (partial / INFO).write_text(json.dumps(info, indent=4) + '\n')
    if out.exists():
        out.rmdir()                                   # empty (checked above)
    partial.rename(out)
    return info
