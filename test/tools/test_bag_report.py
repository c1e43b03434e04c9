"""bag_report on bags written directly with rosbags: numbers, and clear errors."""
import pytest

from aura_ros.bag_types import typestore
from aura_ros.tools import bag_report

GATE = 'aura_ros/msg/GateEvent'


def write_bag(path, steps, storage='mcap', topic='/aura/gate_events', chunk_every=0,
              sequences=None, results=()):
    """A bag with the given (step, wrote) sequence, total counters as a real memory keeps;
    ``sequences``: the publisher's sequence numbers (default 1, 2, ...)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    store = typestore()
    Msg = store.types[GATE]
    Header = store.types['std_msgs/msg/Header']
    Time = store.types['builtin_interfaces/msg/Time']
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conn = writer.add_connection(topic, GATE, typestore=store)
        writes = 0
        for i, (step, wrote) in enumerate(steps):
            writes = (0 if step == 1 else writes) + wrote
            msg = Msg(header=Header(stamp=Time(sec=i, nanosec=0), frame_id='c'), step=step,
                      wrote=wrote, gate_probability=0.9 if wrote else 0.1, surprise=0.5,
                      state_bytes=4224, total_writes=writes, total_steps=step,
                      bytes_written=4224 * writes, step_latency_ms=5.0, backbone_ms=4.0,
                      memory_ms=0.1, frame_stamp=Time(sec=i, nanosec=0),
                      sequence=sequences[i] if sequences else i + 1)
            writer.write(conn, (i + 1) * 10**8, store.serialize_cdr(msg, GATE))
            if chunk_every and (i + 1) % chunk_every == 0:
                writer.storage.close_chunk()   # as gate_recorder's flush does
        if results:                            # sim/episode_result, one per episode
            Result = store.types[bag_report.RESULT_TYPE]
            rconn = writer.add_connection('/sim/episode_result', bag_report.RESULT_TYPE,
                                          typestore=store)
            for e, ok in enumerate(results):
                msg = Result(header=Header(stamp=Time(sec=e, nanosec=0), frame_id=''),
                             episode=e, seed=e, variant='memory', success=ok, steps=2,
                             target=0, reached=0, commands=2)
                writer.write(rconn, (len(steps) + e + 1) * 10**8,
                             store.serialize_cdr(msg, bag_report.RESULT_TYPE))


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_numbers(tmp_path, storage):
    seq = [(1, True), (2, True), (3, False), (4, False), (5, True),   # episode 1
           (1, True), (2, False), (4, False)]                          # reset, then a gap 2->4
    write_bag(tmp_path / 'bag', seq, storage)
    s = bag_report.report(tmp_path / 'bag', tmp_path / 'out')
    assert s['steps'] == 8 and s['writes'] == 4 and s['memory_resets'] == 1
    assert s['write_bursts'] == {'count': 3, 'max_length': 2, 'mean_length': 4 / 3}
    assert s['bytes_written'] == 4 * 4224
    assert s['step_gaps'] == [[2, 4]]
    assert s['write_reduction'] == 2.0
    assert s['episodes'] == 2 and s['steps_per_episode'] == {'min': 3, 'max': 5, 'mean': 4.0}
    text = (tmp_path / 'out' / 'summary.txt').read_text()
    assert 'steps: 8 in 2 episodes' in text and '3 to 5 steps each' in text
    assert s['episode_results'] is None           # the bag has no EpisodeResult


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_episode_results_in_the_bag_give_the_success_rate(tmp_path, storage):
    write_bag(tmp_path / 'bag', [(1, True), (2, False), (1, True), (2, False)], storage,
              results=(True, False))
    s = bag_report.summarise(bag_report.read_bag(tmp_path / 'bag'))
    assert s['episode_results'] == {'episodes': 2, 'successes': 1, 'success_rate': 0.5}
    assert 'episode results: 1/2 succeeded (0.50)' in bag_report.summary_text(s)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_lost_events_are_counted_by_sequence_and_repeats_dropped(tmp_path, storage):
    seq = [(1, True), (2, False), (3, False), (4, True), (5, False), (5, False), (6, False)]
    # events 7 and 8 never reached the bag; a re-delivered event (5) is recorded twice
    write_bag(tmp_path / 'bag', seq, storage, sequences=[3, 4, 5, 6, 9, 9, 10])
    s = bag_report.report(tmp_path / 'bag', tmp_path / 'out')
    assert s['steps'] == 6 and s['lost_events'] == 2 and s['sequence_gaps'] == [[6, 9]]
    assert s['first_sequence'] == 3 and s['last_sequence'] == 10
    text = (tmp_path / 'out' / 'summary.txt').read_text()
    assert 'lost gate events: 2' in text and 'the first 2 events were sent before' in text
    write_bag(tmp_path / 'whole', seq[:4], storage)
    assert bag_report.report(tmp_path / 'whole', tmp_path / 'o2')['lost_events'] == 0


def test_missing_topic_and_unknown_bag_are_clear_errors(tmp_path):
    write_bag(tmp_path / 'bag', [(1, True)], topic='/other')
    with pytest.raises(bag_report.BagError, match='no aura_ros/msg/GateEvent messages on /x'):
        bag_report.read_bag(tmp_path / 'bag', topic='/x')
    with pytest.raises(bag_report.BagError, match='no such bag'):
        bag_report.read_bag(tmp_path / 'nope')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(bag_report.BagError, match='no .mcap or .db3'):
        bag_report.read_bag(tmp_path / 'empty')


def test_truncated_mcap_reads_what_is_there(tmp_path):
    write_bag(tmp_path / 'bag', [(i, i % 3 == 0) for i in range(1, 201)], chunk_every=50)
    mcap = next((tmp_path / 'bag').glob('*.mcap'))
    data = mcap.read_bytes()
    mcap.write_bytes(data[:int(len(data) * 0.6)])   # cut inside the third chunk
    (tmp_path / 'bag' / 'metadata.yaml').unlink()
    contents = bag_report.read_bag(tmp_path / 'bag')
    assert [r.step for r in contents.gate] == list(range(1, 101))   # two whole chunks
    assert any('damaged or truncated' in w or 'summary' in w for w in contents.warnings)


def test_truncated_sqlite_is_a_clear_error(tmp_path):
    write_bag(tmp_path / 'bag', [(i, True) for i in range(1, 50)], storage='sqlite3')
    db = next((tmp_path / 'bag').glob('*.db3'))
    db.write_bytes(db.read_bytes()[:1000])
    (tmp_path / 'bag' / 'metadata.yaml').unlink()
    with pytest.raises(bag_report.BagError, match='not a readable sqlite3 bag'):
        bag_report.read_bag(tmp_path / 'bag')


def test_a_sqlite_bag_killed_mid_write_reads_its_committed_rows_and_is_left_untouched(
        tmp_path):
    """A recorder killed inside a transaction leaves a hot journal: sqlite must roll it back
    to read, which a read-only connection cannot do. The report reads a rolled-back copy."""
    import subprocess
    import sys
    import textwrap
    write_bag(tmp_path / 'bag', [(i, i % 2 == 0) for i in range(1, 11)], storage='sqlite3')
    (tmp_path / 'bag' / 'metadata.yaml').unlink()
    db = next((tmp_path / 'bag').glob('*.db3'))
    # a writer that dies mid-transaction: rows inserted, pages spilled to the file, no commit
    subprocess.run([sys.executable, '-c', textwrap.dedent(f"""
        import os, sqlite3
        db = sqlite3.connect({str(db)!r})
        db.execute('PRAGMA cache_size=1')
        db.execute('BEGIN')
        for i in range(200):
            db.execute('INSERT INTO messages (topic_id, timestamp, data) '
                       'SELECT topic_id, timestamp + 1, data FROM messages LIMIT 1')
        os._exit(0)
        """)], check=True)
    journal = db.with_name(db.name + '-journal')
    assert journal.is_file() and journal.stat().st_size > 0
    before = {f.name: f.read_bytes() for f in (db, journal)}
    import sqlite3
    with pytest.raises(sqlite3.OperationalError, match='readonly'):   # the plain way fails
        sqlite3.connect(f'file:{db}?mode=ro', uri=True).execute('SELECT COUNT(*) FROM topics')
    contents = bag_report.read_bag(tmp_path / 'bag')
    assert [r.step for r in contents.gate] == list(range(1, 11))      # the committed ten
    assert any('a write was in progress' in w for w in contents.warnings)
    assert {f.name: f.read_bytes() for f in (db, journal)} == before   # nothing modified


def test_cli_exit_codes(tmp_path, capsys):
    assert bag_report.main([str(tmp_path / 'nope'), '--out', str(tmp_path / 'o')]) == 2
    assert 'no such bag' in capsys.readouterr().err
    write_bag(tmp_path / 'bag', [(1, True), (2, False)])
    assert bag_report.main([str(tmp_path / 'bag'), '--out', str(tmp_path / 'o')]) == 0
    assert 'writes: 1' in capsys.readouterr().out
