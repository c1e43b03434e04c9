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

TRANSITIONS = {'configure': 1, 'cleanup': 2, 'activate': 3, 'deactivate': 4, 'shutdown': None}
SHUTDOWN_FROM = {'unconfigured': 5, 'inactive': 6, 'active': 7}


def _call(node, srv_type, name, request, timeout):
    import rclpy
    client = node.create_client(srv_type, name)
    if not client.wait_for_service(timeout_sec=timeout):
        raise RuntimeError(f'{name}: no such service within {timeout:g} s (is the node running, '
                           f'in this namespace and ROS_DOMAIN_ID?)')
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    if not future.done() or future.result() is None:
        raise RuntimeError(f'{name}: no answer within {timeout:g} s')
    return future.result()


def _value(text):
    """A command-line parameter value as ROS would read it (YAML: 0.9, true, [1, 2], text)."""
    import yaml
    return yaml.safe_load(text)


def run(args, node):
    base = (f'/{args.ns.strip("/")}/' if args.ns else '/') + args.node
    t = args.timeout
    if args.command in ('arm', 'disarm', 'reset', 'report'):
        from std_srvs.srv import Trigger
        service = {'reset': 'reset_memory', 'report': 'report_memory'}.get(args.command,
                                                                          args.command)
        reply = _call(node, Trigger, f'{base}/{service}', Trigger.Request(), t)
        return reply.success, reply.message
    if args.command == 'param':
        from rcl_interfaces.srv import GetParameters, SetParameters
        from rclpy.parameter import Parameter
        if args.action == 'get':
            reply = _call(node, GetParameters, f'{base}/get_parameters',
                          GetParameters.Request(names=[args.name]), t)
            if not reply.values or reply.values[0].type == 0:
                return False, f'{args.name}: not set on {base}'
            from rclpy.parameter import parameter_value_to_python
            return True, f'{args.name}: {parameter_value_to_python(reply.values[0])}'
        if args.value is None:
            raise SystemExit('param set NAME VALUE')
        msg = Parameter(args.name, value=_value(args.value)).to_parameter_msg()
        reply = _call(node, SetParameters, f'{base}/set_parameters',
                      SetParameters.Request(parameters=[msg]), t)
        result = reply.results[0]
        return result.successful, ('set' if result.successful else
                                   f'refused: {result.reason}')
    if args.command == 'lifecycle':
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState, GetState
        state = _call(node, GetState, f'{base}/get_state', GetState.Request(), t)
        label = state.current_state.label
        if args.action == 'get':
            return True, label
        if args.transition not in TRANSITIONS:
            raise SystemExit(f'lifecycle set: one of {list(TRANSITIONS)}')
        tid = TRANSITIONS[args.transition] or SHUTDOWN_FROM.get(label)
        if tid is None:
            return False, f'no shutdown transition from {label}'
        reply = _call(node, ChangeState, f'{base}/change_state',
                      ChangeState.Request(transition=Transition(id=tid)), t)
        return reply.success, (f'{label} -> {args.transition}: '
                               f"{'done' if reply.success else 'refused'}")
    if args.command == 'episode':
        from std_srvs.srv import SetBool, Trigger
        recorder = (f'/{args.ns.strip("/")}/' if args.ns else '/') + 'episode_recorder'
        if args.action == 'start':
            reply = _call(node, Trigger, f'{recorder}/start_episode', Trigger.Request(), t)
        else:
            reply = _call(node, SetBool, f'{recorder}/end_episode',
                          SetBool.Request(data=not args.failure), t)
        return reply.success, reply.message
    raise SystemExit(f'unknown command {args.command!r}')


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m aura_ros.tools.ctl',
                                     description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='\n'.join(__doc__.splitlines()[2:]))
    parser.add_argument('--ns', default='', help='namespace of the arm')
    parser.add_argument('--node', default='policy_node', help='node name (policy_node)')
    parser.add_argument('--timeout', type=float, default=10.0)
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
    rclpy.init()
    node = rclpy.create_node('aura_ctl')
    try:
        ok, message = run(args, node)
    except RuntimeError as exc:
        ok, message = False, str(exc)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
