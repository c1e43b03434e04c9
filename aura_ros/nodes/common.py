"""Shared rclpy pieces: parameters from the spec tables, diagnostics, time, rate counters."""
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.exceptions import ParameterException
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from aura_ros.params import BOOL, DOUBLE, DOUBLE_ARRAY, INTEGER, STRING, STRING_ARRAY

_TYPES = {STRING: ParameterType.PARAMETER_STRING, INTEGER: ParameterType.PARAMETER_INTEGER,
          DOUBLE: ParameterType.PARAMETER_DOUBLE, BOOL: ParameterType.PARAMETER_BOOL,
          STRING_ARRAY: ParameterType.PARAMETER_STRING_ARRAY,
          DOUBLE_ARRAY: ParameterType.PARAMETER_DOUBLE_ARRAY}
_EMPTY = {STRING_ARRAY: Parameter.Type.STRING_ARRAY, DOUBLE_ARRAY: Parameter.Type.DOUBLE_ARRAY}


# The argument list rclpy.init got in this process (run_node records it; None: sys.argv).
_INIT_ARGS = None


def declare_params(node, specs, on_refuse=None):
    """Declare every spec with a ParameterDescriptor (description, range, read_only), refuse
    out-of-range values and parameter-file typos at start-up with the reason
    (``check_parameter_files``), and validate later changes."""
    values = {}
    for spec in specs:
        desc = ParameterDescriptor(name=spec.name, type=_TYPES[spec.type],
                                   description=spec.description, read_only=spec.read_only)
        if spec.range is not None and spec.type == INTEGER:
            desc.integer_range = [IntegerRange(from_value=int(spec.range[0]),
                                               to_value=int(spec.range[1]), step=1)]
        elif spec.range is not None and spec.type == DOUBLE:
            desc.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]),
                                                            to_value=float(spec.range[1]))]
        if spec.choices:
            desc.additional_constraints = f'one of: {", ".join(spec.choices)}'
        default = spec.default
        try:
            if isinstance(default, list) and not default:
                param = node.declare_parameter(spec.name, _EMPTY[spec.type], desc)
                value = param.value if param.value is not None else []
            else:
                value = node.declare_parameter(spec.name, default, desc).value
        except ParameterException as exc:  # rclpy's own range/type check: same error path
            raise ValueError(f'parameter refused: {spec.name}: {exc}') from exc
        reason = spec.check(value)
        if reason:
            raise ValueError(f'parameter refused: {reason}')
        values[spec.name] = list(value) if isinstance(value, (list, tuple)) else value
    check_parameter_files(node, specs, values.get('strict_parameters', True))
    table = {s.name: s for s in specs}

    def reason_for(p):
        spec = table.get(p.name)
        if spec is None:
            return None
        if spec.read_only:
            return f'{p.name} is read-only (structural: set it in the parameter file)'
        try:
            return spec.check(p.value)
        except TypeError:
            return f'{p.name} must be of type {spec.type}, got {p.value!r}'

    def log_refusals(params):
        """Runs before rclpy's own range/read-only checks: log and count every refusal."""
        for p in params:
            reason = reason_for(p)
            if reason:
                node.get_logger().warning(f'refused parameter change: {reason}')
                if on_refuse is not None:
                    on_refuse(reason)
        return params

    def validate(params):
        for p in params:
            reason = reason_for(p)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    node.add_pre_set_parameters_callback(log_refusals)
    node.add_on_set_parameters_callback(validate)
    return values


def check_parameter_files(node, specs, strict=True):
    """Keys of this process's parameter files (and ``-p`` arguments) that reach this node but
    that it does not declare: a typo is refused (ValueError naming the key and the closest
    declared name), unless ``strict`` is false (then each is logged at WARN). Keys under a
    wildcard section (``/**``) are refused only when no node of this package declares them."""
    import sys

    from aura_ros.params import file_sections, params_files_and_overrides, unknown_parameters
    files, names = params_files_and_overrides(_INIT_ARGS if _INIT_ARGS is not None
                                              else sys.argv)
    if not files and not names:
        return
    sections = [section for path in files for section in file_sections(path)]
    problems = unknown_parameters(sections, node.get_fully_qualified_name(),
                                  {s.name for s in specs}, extra=names)
    if problems and strict:
        more = f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''
        raise ValueError(problems[0] + more + '; set strict_parameters: false to allow keys '
                         'of other packages')
    for problem in problems:
        node.get_logger().warning(problem + ' (ignored: strict_parameters is false)')


# Episode boundaries are state, not a stream: reliable and transient-local (latched), so a
# subscriber whose connection completes just after a START (discovery is per topic) still gets
# it. Subscribers use the same profile; gate_recorder matches it (see its ``discover``).
EVENTS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)


# Gate events are a stream a recorder must not lose the start of: reliable and transient-local
# with a bounded history, so a subscriber whose connection completes after the first events
# (discovery is per topic, and a recorder may start a moment late) still receives them. A
# volatile subscriber still connects (it just gets no history).
GATE_EVENTS_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)


def stamp_to_sec(stamp):
    return stamp.sec + stamp.nanosec * 1e-9


def diagnostic_array(node, name, level, message, values, hardware_id='aura_ros'):
    """A DiagnosticArray with one status; values: dict of key -> value (stringified)."""
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=str(k), value=str(v))
                                      for k, v in values.items()])
    array = DiagnosticArray(status=[status])
    array.header.stamp = node.get_clock().now().to_msg()
    return array


OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


class ThrottledLog:
    """Log each distinct message at most once per ``period`` seconds: a flood of the same bad
    input costs one line per period, while a new kind of problem is always logged."""

    def __init__(self, logger, period=1.0, max_keys=256):
        self.logger, self.period, self.max_keys = logger, period, max_keys
        self.last = {}

    def __call__(self, level, message, key=None):
        key = key or message
        now = time.monotonic()
        if now - self.last.get(key, -1e9) < self.period:
            return
        if len(self.last) >= self.max_keys:
            self.last.clear()
        self.last[key] = now
        getattr(self.logger, level)(message)


def run_node(make_node, spin, args=None, close=None, exit_process=False, **init_kwargs):
    """The life of a node executable: init, build the node (a refused parameter or a bad
    setting exits with status 2 and one line saying why), ``spin(node)`` until it returns or
    Ctrl-C / shutdown, then ``close(node)`` (if given), destroy and shut down.

    ``exit_process`` (the long-running nodes stopped by a signal: policy, perception,
    recorder): after that clean shutdown, run the atexit handlers, flush, and end the process
    with the status at once (``os._exit``), skipping the interpreter's teardown of every loaded
    module: with torch and a model loaded that alone takes 0.6-1.4 s, and a node must stop
    within 1 s of SIGINT. Everything the node writes is closed by ``close`` / ``destroy_node``
    before. Not for nodes that publish a last message and end on their own (status_publisher,
    a sim with a set number of episodes): the teardown's delay is what lets DDS deliver it.
    ``False`` (default) returns the status."""
    import sys

    import rclpy
    from rclpy.executors import ExternalShutdownException
    global _INIT_ARGS
    _INIT_ARGS = args
    rclpy.init(args=args, **init_kwargs)
    try:
        node = make_node()
    except Exception as exc:  # noqa: BLE001 - refuse with the reason, no traceback
        print(f'{getattr(make_node, "__name__", "node")}: {exc}', file=sys.stderr)
        rclpy.try_shutdown()
        return _end(2, exit_process)
    try:
        spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        _join_signal_thread()      # before the traceback lets go of spin's executor
    except Exception:
        _join_signal_thread()
        # SIGINT shuts the context down from the signal handler, which can land between a
        # spin loop's rclpy.ok() and its wait (RCLError: "the given context is not valid"):
        # after a shutdown that is the stop it asked for, not a failure
        if rclpy.ok():
            raise
    finally:
        _join_signal_thread()
        if close is not None:
            close(node)
        node.destroy_node()
        rclpy.try_shutdown()
    return _end(0, exit_process)


def _join_signal_thread():
    """End rclpy's signal handling (its thread joined, the previous handlers back) before any
    executor is freed. On SIGINT that thread triggers every executor's SIGINT guard condition,
    walking their list without a lock; the main thread, woken by that very trigger, raises
    KeyboardInterrupt and frees ``spin``'s executor, which unregisters (frees the list) and
    destroys its guard condition while the thread may still be using both: a use-after-free
    (a policy node exited with SIGSEGV on SIGINT once, on a loaded machine). Joining the thread
    first closes that window. Idempotent; a second SIGINT during close still interrupts it
    (Python's own handler is back)."""
    from rclpy.signals import uninstall_signal_handlers
    uninstall_signal_handlers()


def _end(status, exit_process):
    if not exit_process:
        return status
    import atexit
    import os
    import sys
    atexit._run_exitfuncs()   # logging.shutdown and friends, as a normal exit would
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def spin_until_done(node, done):
    """Spin ``node`` until ``done()`` is true or ROS shuts down."""
    import rclpy
    while rclpy.ok() and not done():
        rclpy.spin_once(node, timeout_sec=0.1)
