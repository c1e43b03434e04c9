"""The ROS 2 CLI calls the README teaches, for a pip-only install (no ``ros2`` command):

    python -m aura_ros.tools.ctl arm              # ros2 service call /policy_node/arm ...
    python -m aura_ros.tools.ctl disarm           # also: reset (~/reset_memory), report
    python -m aura_ros.tools.ctl param get memory.gate_threshold
    python -m aura_ros.tools.ctl param set memory.gate_threshold 0.9   # ros2 param set ...
    python -m aura_ros.tools.ctl lifecycle get    # ros2 lifecycle get /policy_node
    python -m aura_ros.tools.ctl lifecycle set deactivate   # configure, activate, ...
    python -m aura_ros.tools.ctl episode start    # /episode_recorder/start_episode
    python -m aura_ros.tools.ctl episode end --failure      # ... end_episode {data: false}

``--ns left`` addresses the arm in namespace ``left``; ``--node`` another node name. Each call
prints the answer in one line and exits 0, or says why it failed and exits 1 (no such node
within ``--timeout`` seconds, a refused parameter or transition).
"""
import argparse
import sys
import time

TRANSITIONS = {'configure': 1, 'cleanup': 2, 'activate': 3, 'deactivate': 4, 'shutdown': None}
SHUTDOWN_FROM = {'unconfigured': 5, 'inactive': 6, 'active': 7}
GOAL = {'configure': 'inactive', 'cleanup': 'unconfigured', 'activate': 'active',
        'deactivate': 'inactive'}
RETRY_S = 3.0     # an idempotent request without an answer goes again after this long


class _Deadline:
    """``--timeout`` bounds the whole command, every stage of it."""

    def __init__(self, seconds):
        self.seconds, self.end = seconds, time.monotonic() + seconds

    def left(self):
        return max(0.0, self.end - time.monotonic())


def _client(node, srv_type, name, deadline):
    client = node.create_client(srv_type, name)
    if not client.wait_for_service(timeout_sec=deadline.left()):
        raise RuntimeError(f'{name}: no such service within {deadline.seconds:g} s (is the node '
                           f'running, in this namespace and ROS_DOMAIN_ID?)')
    return client


def _spin(executor, until, done):
    """Spin until ``done()`` or the monotonic time ``until``."""
    while not done() and time.monotonic() < until:
        executor.spin_once(timeout_sec=min(0.05, max(0.0, until - time.monotonic())))
    return done()


def _answer(futures):
    return next((f.result() for f in futures if f.done() and f.result() is not None), None)


def _call(node, executor, srv_type, name, request, deadline, retry=True):
    """A request and its answer within the deadline. A service answer can be lost under load:
    a fresh process's reply reader not yet matched by the server when it answers (Fast DDS
    drops the reply: 'client will not receive response'); the same request then goes again
    every ``RETRY_S`` seconds
    until the deadline, and the first answer to any of them is the answer: for idempotent
    requests only (a read, a set to a value, arm/disarm). ``retry=False`` (a request that must
    not go twice: reset, episodes): one request, its answer awaited until the deadline."""
    client = _client(node, srv_type, name, deadline)
    futures = []
    while deadline.left() > 0:
        futures.append(client.call_async(request))
        if _spin(executor, time.monotonic() + min(RETRY_S if retry else 1e9, deadline.left()),
                 lambda: _answer(futures) is not None):
            return _answer(futures)
    raise RuntimeError(f'{name}: no answer within {deadline.seconds:g} s')


def _transition(node, executor, base, label, transition, deadline):
    """Ask for a lifecycle transition (sent once: a transition must not run twice) and say
    how it ended. A lost answer (see ``_call``) is recovered from the node: the transition
    is done when the node reaches its goal state from another one (a node already there
    refuses the transition, so its state says nothing), or, for shutdown, when the node leaves
    the graph (it ends its process once finalized)."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    tid = TRANSITIONS[transition] or SHUTDOWN_FROM.get(label)
    if tid is None:
        return False, f'no shutdown transition from {label}'
    goal = GOAL.get(transition) if GOAL.get(transition) != label else None
    change = _client(node, ChangeState, f'{base}/change_state', deadline)
    state = node.create_client(GetState, f'{base}/get_state')
    sent = [change.call_async(ChangeState.Request(transition=Transition(id=tid)))]
    polls = []
    while deadline.left() > 0:
        _spin(executor, time.monotonic() + min(RETRY_S, deadline.left()),
              lambda: _answer(sent) is not None)
        reply = _answer(sent)
        if reply is not None:
            return reply.success, (f'{label} -> {transition}: '
                                   f"{'done' if reply.success else 'refused'}")
        if transition == 'shutdown' and not change.service_is_ready():
            return True, f'{label} -> shutdown: done (the node has left the graph)'
        now = _answer(polls)
        if goal is not None and now is not None and now.current_state.label == goal:
            return True, f'{label} -> {transition}: done (the node is {goal})'
        polls = [state.call_async(GetState.Request())]    # a newer look for the next round
    raise RuntimeError(f'{base}/change_state: no answer within {deadline.seconds:g} s')


def _value(text):
    """A command-line parameter value as ROS would read it (YAML: 0.9, true, [1, 2], text)."""
    import yaml
    return yaml.safe_load(text)


def run(args, node, executor):
    base = (f'/{args.ns.strip("/")}/' if args.ns else '/') + args.node
    t = _Deadline(args.timeout)
    if args.command in ('arm', 'disarm', 'reset', 'report'):
        from std_srvs.srv import Trigger
        service = {'reset': 'reset_memory', 'report': 'report_memory'}.get(args.command,
                                                                          args.command)
        reply = _call(node, executor, Trigger, f'{base}/{service}', Trigger.Request(), t,
                      retry=args.command != 'reset')     # a second reset would erase more
        return reply.success, reply.message
    if args.command == 'param':
        from rcl_interfaces.srv import GetParameters, SetParameters
        from rclpy.parameter import Parameter
        if args.action == 'get':
            reply = _call(node, executor, GetParameters, f'{base}/get_parameters',
                          GetParameters.Request(names=[args.name]), t)
            if not reply.values or reply.values[0].type == 0:
                return False, f'{args.name}: not set on {base}'
            from rclpy.parameter import parameter_value_to_python
            return True, f'{args.name}: {parameter_value_to_python(reply.values[0])}'
        if args.value is None:
            raise SystemExit('param set NAME VALUE')
        msg = Parameter(args.name, value=_value(args.value)).to_parameter_msg()
        reply = _call(node, executor, SetParameters, f'{base}/set_parameters',
                      SetParameters.Request(parameters=[msg]), t)
        result = reply.results[0]
        return result.successful, ('set' if result.successful else
                                   f'refused: {result.reason}')
    if args.command == 'lifecycle':
        from lifecycle_msgs.srv import GetState
        state = _call(node, executor, GetState, f'{base}/get_state', GetState.Request(), t)
        label = state.current_state.label
        if args.action == 'get':
            return True, label
        if args.transition not in TRANSITIONS:
            raise SystemExit(f'lifecycle set: one of {list(TRANSITIONS)}')
        return _transition(node, executor, base, label, args.transition, t)
    if args.command == 'episode':
        from std_srvs.srv import SetBool, Trigger
        recorder = (f'/{args.ns.strip("/")}/' if args.ns else '/') + 'episode_recorder'
        if args.action == 'start':
            reply = _call(node, executor, Trigger, f'{recorder}/start_episode',
                          Trigger.Request(), t, retry=False)
        else:
            reply = _call(node, executor, SetBool, f'{recorder}/end_episode',
                          SetBool.Request(data=not args.failure), t, retry=False)
        return reply.success, reply.message
    raise SystemExit(f'unknown command {args.command!r}')


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m aura_ros.tools.ctl',
                                     description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='\n'.join(__doc__.splitlines()[2:]))
    parser.add_argument('--ns', default='', help='namespace of the arm')
    parser.add_argument('--node', default='policy_node', help='node name (policy_node)')
    parser.add_argument('--timeout', type=float, default=10.0,
                        help='seconds for the whole call (finding the node and its answer)')
    sub = parser.add_subparsers(dest='command', required=True)
    for name in ('arm', 'disarm', 'reset', 'report'):
        sub.add_parser(name)
    p = sub.add_parser('param')
    p.add_argument('action', choices=['get', 'set'])
    p.add_argument('name')
    p.add_argument('value', nargs='?')
    p = sub.add_parser('lifecycle')
    p.add_argument('action', choices=['get', 'set'])
    p.add_argument('transition', nargs='?')
    p = sub.add_parser('episode')
    p.add_argument('action', choices=['start', 'end'])
    p.add_argument('--failure', action='store_true', help='end: the episode failed')
    args = parser.parse_args(argv)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    rclpy.init()
    node = rclpy.create_node('aura_ctl')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        ok, message = run(args, node, executor)
    except RuntimeError as exc:
        ok, message = False, str(exc)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
