"""nodes/common.py: the life of a node executable (run_node)."""
import pytest
import rclpy
import rclpy.signals
from rclpy.executors import SingleThreadedExecutor

from aura_ros.nodes import common

pytestmark = pytest.mark.ros


def test_signal_thread_is_joined_before_spins_executor_is_freed(monkeypatch):
    """On SIGINT rclpy's signal thread walks the executors' SIGINT guard conditions without a
    lock while the main thread unwinds: the executor ``spin`` made must outlive that thread
    (joined by uninstall_signal_handlers), or freeing it is a use-after-free."""
    events = []
    uninstall = rclpy.signals.uninstall_signal_handlers

    def recorded_uninstall():
        events.append('signal thread joined')
        uninstall()

    destroy = rclpy.signals.SignalHandlerGuardCondition.destroy

    def recorded_destroy(self):
        events.append('sigint guard condition destroyed')
        destroy(self)

    monkeypatch.setattr(rclpy.signals, 'uninstall_signal_handlers', recorded_uninstall)
    monkeypatch.setattr(rclpy.signals.SignalHandlerGuardCondition, 'destroy', recorded_destroy)

    def spin(node):
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin_once(timeout_sec=0.0)
        raise KeyboardInterrupt          # Ctrl-C while spinning

    closed = []
    status = common.run_node(lambda: rclpy.create_node('run_node_test'), spin, args=[],
                             close=lambda node: closed.append(events[:]))
    assert status == 0
    assert events[0] == 'signal thread joined', events
    assert 'sigint guard condition destroyed' in events
    assert len(closed) == 1 and closed[0][0] == 'signal thread joined'   # close after it
    assert not rclpy.ok()
