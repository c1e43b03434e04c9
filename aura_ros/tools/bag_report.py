"""Gate activity of a rosbag2 directory, as numbers and pictures, without ROS.

    python -m aura_ros.tools.bag_report BAG --out DIR

Reads bags from ``ros2 bag record`` or ``gate_recorder`` (sqlite3 or MCAP; also one whose
recorder was killed: no metadata.yaml, MCAP without summary), decodes aura_ros/msg/GateEvent
(with the bag's own message definitions, or aura_ros's when the bag has none) and writes:
  summary.json, summary.txt   steps, writes, write rate, write bursts, bytes written, state
                              bytes min/max, memory resets, gaps in step numbers, and events
                              lost by the recording (gaps in the publisher's sequence numbers)
  gate_activity.png           writes over time with the gate probability
  cumulative_writes.png       cumulative writes against an always-write memory
  state_bytes.png             state bytes over time next to what a KV-cache would have held
Problems (missing topic, unknown type, truncated file) get one clear line, not a traceback.
"""
import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from aura_ros.bag_types import typestore

GATE_TYPE = 'aura_ros/msg/GateEvent'
TRUTH_TYPE = 'aura_ros/msg/FrameTruth'
RESULT_TYPE = 'aura_ros/msg/EpisodeResult'
KV_BYTES_PER_STEP = 256   # (d_k + d_v) * 4 at d_k = d_v = 32


class BagError(Exception):
    """A bag that cannot be reported on; the message says why."""


@dataclass
class GateRecord:
    t: float                # receive/log time, seconds since the first record
    step: int
    wrote: bool
    gate_probability: float
    surprise: float
    state_bytes: int
    total_writes: int
    total_steps: int
    bytes_written: int
    sequence: int = 0       # the publisher's event count (0: a bag recorded before it existed)
    frame_stamp_ns: int = 0  # header stamp of the camera frame the step processed


@dataclass
class BagContents:
    path: str
    storage: str
    topics: dict                        # topic -> (type, count)
    gate: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    truth: dict = field(default_factory=dict)   # frame stamp (ns) -> kind (FrameTruth, a sim's)
    results: list = field(default_factory=list)   # (episode, success) of EpisodeResults


def read_bag(path, topic=None):
    """Decode a bag's GateEvents (and list its topics); raises BagError with the reason."""
    path = Path(path)
    if not path.exists():
        raise BagError(f'{path}: no such bag')
    if path.is_file():   # a bare .mcap / .db3 file
        files, folder = [path], path.parent
    else:
        files = sorted(path.glob('*.mcap')) + sorted(path.glob('*.db3'))
        folder = path
    if not files:
        raise BagError(f'{path}: no .mcap or .db3 file in the bag directory')
    metadata = folder / 'metadata.yaml'
    contents = None
    if metadata.is_file() and path.is_dir():
        try:
            contents = _read_with_rosbags(folder, topic)
        except BagError:
            raise
        except Exception as exc:  # noqa: BLE001 - damaged/incomplete: try the raw readers
            warning = f'rosbags could not read the bag ({type(exc).__name__}: {exc}); ' \
                      f'reading the storage file directly'
            contents = None
    else:
        warning = 'no metadata.yaml (recorder did not close the bag): reading the storage ' \
                  'file directly'
    if contents is None:
        file = files[0]
        contents = (_read_mcap_raw(file, topic) if file.suffix == '.mcap'
                    else _read_sqlite_raw(file, topic))
        contents.warnings.insert(0, warning)
    if not contents.gate:
        listed = ', '.join(f'{t} [{ty}]' for t, (ty, _) in contents.topics.items()) or 'none'
        raise BagError(f'{path}: no {GATE_TYPE} messages'
                       f'{" on " + topic if topic else ""}; topics in the bag: {listed}')
    contents.gate = drop_repeats(contents.gate)
    t0 = contents.gate[0].t
    for rec in contents.gate:
        rec.t -= t0
    return contents


def drop_repeats(records):
    """Records in recording order without repeated sequence numbers (a transient-local
    history delivered again after a recorder re-subscribed); records without one are kept."""
    seen, out = set(), []
    for rec in records:
        if rec.sequence:
            if rec.sequence in seen:
                continue
            seen.add(rec.sequence)
        out.append(rec)
    return out


def sequence_gaps(records):
    """Events the recording lost: ([[last seen, next seen], ...], lost count) from the
    publisher's sequence numbers (in sequence order; none for bags without them)."""
    seq = np.sort([r.sequence for r in records if r.sequence])
    gaps = [[int(a), int(b)] for a, b in zip(seq[:-1], seq[1:]) if b > a + 1]
    return gaps, int(sum(b - a - 1 for a, b in gaps))


def _gate_record(t_ns, msg):
    return GateRecord(t=t_ns * 1e-9, step=int(msg.step), wrote=bool(msg.wrote),
                      gate_probability=float(msg.gate_probability), surprise=float(msg.surprise),
                      state_bytes=int(msg.state_bytes), total_writes=int(msg.total_writes),
                      total_steps=int(msg.total_steps), bytes_written=int(msg.bytes_written),
                      sequence=int(getattr(msg, 'sequence', 0)),
                      frame_stamp_ns=_ns(getattr(msg, 'frame_stamp', None)))


def _ns(stamp):
    return 0 if stamp is None else int(stamp.sec) * 10**9 + int(stamp.nanosec)


def _truth(contents, msg):
    contents.truth[_ns(msg.header.stamp)] = str(msg.kind)


def _other(contents, msgtype, msg):
    """FrameTruth and EpisodeResult messages (read beside the gate events)."""
    if msgtype == TRUTH_TYPE:
        _truth(contents, msg)
    elif msgtype == RESULT_TYPE:
        contents.results.append((int(msg.episode), bool(msg.success)))


def _wanted(conn_topic, msgtype, topic):
    return msgtype == GATE_TYPE and (topic is None or conn_topic == topic)


def _read_with_rosbags(folder, topic):
    from rosbags.highlevel import AnyReader
    contents = BagContents(str(folder), '', {})
    with AnyReader([folder], default_typestore=typestore()) as reader:
        import yaml
        meta = yaml.safe_load((folder / 'metadata.yaml').read_text())
        contents.storage = meta['rosbag2_bagfile_information'].get('storage_identifier', '?')
        for conn in reader.connections:
            contents.topics[conn.topic] = (conn.msgtype, conn.msgcount)
        conns = [c for c in reader.connections if _wanted(c.topic, c.msgtype, topic)
                 or c.msgtype in (TRUTH_TYPE, RESULT_TYPE)]
        for conn, t_ns, raw in (reader.messages(connections=conns) if conns else ()):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.msgtype == GATE_TYPE:
                contents.gate.append(_gate_record(t_ns, msg))
            else:
                _other(contents, conn.msgtype, msg)
    return contents


def _read_mcap_raw(file, topic):
    """Sequential MCAP read (works without summary/footer), ROS 2 decoding from the schemas
    stored in the file; stops cleanly at a truncated record."""
    from mcap.reader import NonSeekingReader
    from mcap_ros2.decoder import DecoderFactory
    contents = BagContents(str(file), 'mcap (raw)', {})
    with open(file, 'rb') as f:
        reader = NonSeekingReader(f, decoder_factories=[DecoderFactory()])
        try:
            for schema, channel, message, decoded in reader.iter_decoded_messages(
                    log_time_order=False):
                name = schema.name if schema else '?'
                ty, n = contents.topics.get(channel.topic, (name, 0))
                contents.topics[channel.topic] = (ty, n + 1)
                if _wanted(channel.topic, name, topic):
                    contents.gate.append(_gate_record(message.log_time, decoded))
                elif name in (TRUTH_TYPE, RESULT_TYPE):
                    _other(contents, name, decoded)
        except Exception as exc:  # noqa: BLE001 - truncated tail: keep what was read
            what = ('file ends without its summary section (recorder stopped hard?)'
                    if type(exc).__name__ == 'EndOfFile' else
                    f'file is damaged or truncated ({type(exc).__name__}: {exc})')
            contents.warnings.append(f'{what}; {len(contents.gate)} gate events read')
    return contents


def _read_sqlite_raw(file, topic):
    """Committed rows of a rosbag2 sqlite3 file, types from its message_definitions table
    (or aura_ros's own definitions)."""
    contents = BagContents(str(file), 'sqlite3 (raw)', {})
    with tempfile.TemporaryDirectory(prefix='aura_bag_') as scratch:
        try:
            with closing(_open_committed(Path(file), Path(scratch), contents.warnings)) as db:
                _read_sqlite_rows(db, topic, contents)
        except sqlite3.DatabaseError as exc:
            raise BagError(f'{file}: not a readable sqlite3 bag ({exc})') from exc
    return contents


def _open_committed(file: Path, scratch: Path, warnings):
    """A read-only connection to ``file``'s committed rows. A writer killed mid-transaction
    leaves a hot journal that sqlite must roll back before it can read, which a read-only
    connection cannot do: then a copy of the file and its journal in ``scratch`` is opened
    and rolled back (the bag itself is never modified)."""
    hot = [file.with_name(file.name + s) for s in ('-journal', '-wal')]
    hot = [j for j in hot if j.is_file() and j.stat().st_size > 0]
    if not hot:
        return sqlite3.connect(f'file:{file}?mode=ro', uri=True)
    for f in (file, *hot):
        shutil.copy2(f, scratch / f.name)
    warnings.append(f'{", ".join(j.name for j in hot)}: a write was in progress when the '
                    f'recorder stopped; read with it rolled back (messages after the last '
                    f'flush are not in the bag)')
    return sqlite3.connect(str(scratch / file.name))


def _read_sqlite_rows(db, topic, contents):
    """Every topic's count, the gate events and the truth/result messages of ``db``."""
    from rosbags.typesys import get_types_from_msg
    topics = {row[0]: (row[1], row[2]) for row in
              db.execute('SELECT id, name, type FROM topics')}
    store = typestore()
    try:
        for ty, encoding, text in db.execute('SELECT topic_type, encoding, '
                                             'encoded_message_definition FROM '
                                             'message_definitions'):
            if encoding == 'ros2msg' and ty not in store.fielddefs and text:
                store.register(get_types_from_msg(text.split('\n' + '=' * 80)[0], ty))
    except sqlite3.Error:
        pass
    counts = dict(db.execute('SELECT topic_id, COUNT(*) FROM messages GROUP BY topic_id'))
    for tid, (name, ty) in topics.items():
        contents.topics[name] = (ty, counts.get(tid, 0))
    ids = [tid for tid, (name, ty) in topics.items() if _wanted(name, ty, topic)]
    for tid in ids:
        for t_ns, data in db.execute('SELECT timestamp, data FROM messages WHERE topic_id=? '
                                     'ORDER BY timestamp', (tid,)):
            msg = store.deserialize_cdr(bytes(data), GATE_TYPE)
            contents.gate.append(_gate_record(t_ns, msg))
    for tid, (_, ty) in topics.items():
        if ty in (TRUTH_TYPE, RESULT_TYPE):
            for (data,) in db.execute('SELECT data FROM messages WHERE topic_id=?', (tid,)):
                _other(contents, ty, store.deserialize_cdr(bytes(data), ty))


# ---- numbers -------------------------------------------------------------------------------
def summarise(contents: BagContents):
    recs = contents.gate
    steps = np.array([r.step for r in recs])
    wrote = np.array([r.wrote for r in recs], bool)
    resets = int(np.sum(steps[1:] <= steps[:-1]))
    gaps = [[int(a), int(b)] for a, b in zip(steps[:-1], steps[1:]) if b > a + 1]
    bursts, run = [], 0   # runs of consecutive writes; a memory reset ends a run
    for i, w in enumerate(wrote):
        if i and steps[i] <= steps[i - 1] and run:
            bursts.append(run)
            run = 0
        if w:
            run += 1
        elif run:
            bursts.append(run)
            run = 0
    if run:
        bursts.append(run)
    # bytes written: the cumulative counter's increments; it restarts at a memory reset
    written = recs[0].bytes_written
    for prev, cur in zip(recs[:-1], recs[1:]):
        written += cur.bytes_written - (prev.bytes_written if cur.step > prev.step else 0)
    state = np.array([r.state_bytes for r in recs])
    seq_gaps, lost = sequence_gaps(recs)
    sequences = [r.sequence for r in recs if r.sequence]
    kinds = writes_by_frame_kind(contents)
    starts = [0] + [i for i in range(1, len(steps)) if steps[i] <= steps[i - 1]] + [len(steps)]
    lengths = np.diff(starts)              # memory steps of each stretch between resets
    results = dict(sorted(dict(contents.results).items()))
    return dict(
        bag=contents.path, storage=contents.storage, topics={t: {'type': ty, 'messages': n}
                                                            for t, (ty, n) in
                                                            contents.topics.items()},
        steps=len(recs), first_step=int(steps[0]), last_step=int(steps[-1]),
        episodes=len(lengths), steps_per_episode=dict(min=int(lengths.min()),
                                                      max=int(lengths.max()),
                                                      mean=float(lengths.mean())),
        episode_results=dict(episodes=len(results), successes=int(sum(results.values())),
                             success_rate=(sum(results.values()) / len(results))
                             if results else None) if results else None,
        memory_resets=resets, writes=int(wrote.sum()),
        write_rate=float(wrote.mean()), always_write_writes=len(recs),
        write_reduction=(len(recs) / wrote.sum()) if wrote.any() else None,
        write_bursts=dict(count=len(bursts), max_length=max(bursts, default=0),
                          mean_length=float(np.mean(bursts)) if bursts else 0.0),
        bytes_written=int(written), state_bytes_min=int(state.min()),
        state_bytes_max=int(state.max()), step_gaps=gaps[:100], step_gap_count=len(gaps),
        first_sequence=int(min(sequences)) if sequences else None,
        last_sequence=int(max(sequences)) if sequences else None,
        lost_events=lost if sequences else None, sequence_gaps=seq_gaps[:100],
        gate_probability_mean=float(np.mean([r.gate_probability for r in recs])),
        duration_s=float(recs[-1].t - recs[0].t), warnings=contents.warnings,
        write_probability_by_frame_kind=kinds)


def writes_by_frame_kind(contents):
    """{kind: {p, ci95, writes, frames}} of the gate events whose frame the bag's FrameTruth
    names (a simulated arm's recording), None when the bag has none."""
    if not contents.truth:
        return None
    from aura_ros.bench.stats import wilson
    counts = {}
    for rec in contents.gate:
        kind = contents.truth.get(rec.frame_stamp_ns)
        if kind is None:
            continue
        w, n = counts.get(kind, (0, 0))
        counts[kind] = (w + int(rec.wrote), n + 1)
    return {kind: dict(p=w / n, ci95=wilson(w, n), writes=w, frames=n)
            for kind, (w, n) in sorted(counts.items())}


def summary_text(s):
    bursts = s['write_bursts']
    per = s['steps_per_episode']
    lines = [f"bag: {s['bag']} ({s['storage']})",
             f"steps: {s['steps']} in {s['episodes']} episodes (memory resets split them; "
             f"{per['min']} to {per['max']} steps each, mean {per['mean']:.1f}; "
             f"{s['duration_s']:.1f} s)",
             f"writes: {s['writes']} (write rate {s['write_rate']:.4f}; always-write would "
             f"write {s['always_write_writes']}"
             + (f", {s['write_reduction']:.1f}x more)" if s['write_reduction'] else ')'),
             f"write bursts: {bursts['count']} (longest {bursts['max_length']}, "
             f"mean {bursts['mean_length']:.2f})",
             f"bytes written: {s['bytes_written']:,}",
             f"state bytes: min {s['state_bytes_min']:,}, max {s['state_bytes_max']:,}",
             f"gaps in step numbers: {s['step_gap_count']}",
             ('lost gate events: unknown (a bag without sequence numbers)'
              if s['lost_events'] is None else
              f"lost gate events: {s['lost_events']} (sequence {s['first_sequence']} .. "
              f"{s['last_sequence']}, {len(s['sequence_gaps'])} gaps"
              + (f"; the first {s['first_sequence'] - 1} events were sent before the "
                 f"recording began" if s['first_sequence'] > 1 else '') + ')'),
             'topics: ' + ', '.join(f"{t} [{v['type']}] x{v['messages']}"
                                    for t, v in s['topics'].items())]
    if s.get('episode_results'):
        r = s['episode_results']
        lines.append(f"episode results: {r['successes']}/{r['episodes']} succeeded "
                     f"({r['success_rate']:.2f})")
    if s.get('write_probability_by_frame_kind'):
        lines.append('writes by frame kind (the sim\'s ground truth): ' + ', '.join(
            f"{k} {v['writes']}/{v['frames']}"
            for k, v in s['write_probability_by_frame_kind'].items()))
    lines += [f'warning: {w}' for w in s['warnings']]
    return '\n'.join(lines) + '\n'


# ---- pictures ------------------------------------------------------------------------------
def plot_all(contents: BagContents, out: Path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    recs = contents.gate
    x = np.arange(len(recs))
    wrote = np.array([r.wrote for r in recs])
    prob = np.array([r.gate_probability for r in recs])
    steps = np.array([r.step for r in recs])

    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(x, prob, lw=0.8, color='tab:blue', label='gate probability')
    ax.vlines(x[wrote], 0, 1, color='tab:red', lw=1.0, alpha=0.7, label='write')
    resets = x[1:][steps[1:] <= steps[:-1]]
    if len(resets):   # memory resets (e.g. a new episode)
        ax.vlines(resets - 0.5, 0, 1.05, color='k', ls=':', lw=0.8, label='memory reset')
    ax.set_ylim(0, 1.05)
    ax.set_xlabel('memory step (in recording order)')
    ax.set_title(f'Gate activity: {int(wrote.sum())} writes in {len(recs)} steps')
    ax.legend(loc='upper left', bbox_to_anchor=(1.0, 1.0), fontsize=8, borderaxespad=0.0)
    fig.tight_layout()
    fig.savefig(out / 'gate_activity.png', dpi=110, bbox_inches='tight')   # legend outside
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x + 1, np.cumsum(wrote), color='tab:red', label='AURA (gated)')
    ax.plot(x + 1, x + 1, color='tab:gray', ls='--', label='always-write')
    ax.set_xlabel('memory steps')
    ax.set_ylabel('cumulative writes')
    ax.set_title('Cumulative writes')
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / 'cumulative_writes.png', dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x + 1, [r.state_bytes for r in recs], color='tab:red', label='AURA state bytes')
    ax.plot(x + 1, KV_BYTES_PER_STEP * steps, color='tab:gray', ls='--',
            label=f'KV-cache ({KV_BYTES_PER_STEP} B per step since the episode began)')
    ax.set_xlabel('memory steps (in recording order)')
    ax.set_ylabel('bytes')
    ax.set_yscale('log')
    cross = int(np.ceil(max(r.state_bytes for r in recs) / KV_BYTES_PER_STEP))
    ax.set_title(f'Inference state: a KV-cache holds less than AURA only in the first '
                 f'{cross - 1} steps of an episode', fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / 'state_bytes.png', dpi=110)
    plt.close(fig)


def report(bag, out, topic=None):
    contents = read_bag(bag, topic)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(contents)
    (out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    (out / 'summary.txt').write_text(summary_text(summary))
    plot_all(contents, out)
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m aura_ros.tools.bag_report',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('bag', help='rosbag2 directory (or a .mcap/.db3 file)')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--topic', default=None, help='GateEvent topic (default: any)')
    args = parser.parse_args(argv)
    try:
        summary = report(args.bag, args.out, args.topic)
    except BagError as exc:
        print(f'bag_report: {exc}', file=sys.stderr)
        return 2
    print(summary_text(summary), end='')
    print(f'wrote {args.out}/summary.json, summary.txt, gate_activity.png, '
          f'cumulative_writes.png, state_bytes.png')
    return 0


if __name__ == '__main__':
    sys.exit(main())


__all__ = ['read_bag', 'summarise', 'report', 'BagError', 'GateRecord', 'asdict']
