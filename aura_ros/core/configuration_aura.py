"""Configuration of AURA-Mem and of the baselines that share its interface.

One dataclass describes every memory arm; it validates itself so that a bad parameter file or
checkpoint fails at load time with the reason, not deep inside a tensor op.
"""
import json
from dataclasses import asdict, dataclass, fields

# The one list of memory kinds (arms behind the one interface): kind -> (the module that holds
# the state, the write rule of a fast-weight memory, what a learned gate sees). core/__init__.py
# maps the modules to classes, write_rules.py the rules; adding a kind is one row here.
KINDS = {
    'aura': ('fast_weight', 'learned_gate', ('state', 'features')),    # the product
    'aura_surprise_only': ('fast_weight', 'learned_gate', ('state',)),  # ablation
    'feature_gate': ('fast_weight', 'learned_gate', ('features',)),     # ablation
    'always_write': ('fast_weight', 'always', ()),
    'random_budget': ('fast_weight', 'random', ()),
    'periodic_budget': ('fast_weight', 'periodic', ()),
    'skip_budget': ('fast_weight', 'skip_rnn', ()),
    'gru_dense': ('gru', None, ()),
    'kv_cache': ('kv_cache', None, ()),
    'no_memory': ('no_memory', None, ()),
}
MEMORY_KINDS = tuple(KINDS)
FAST_WEIGHT_KINDS = tuple(k for k, (module, _, _) in KINDS.items() if module == 'fast_weight')
GATED_KINDS = tuple(k for k, (_, rule, _) in KINDS.items() if rule == 'learned_gate')
# The learned gate's state signals (surprise, the change a write causes in this action and the
# next) enter it as SIGNAL_SCALE * log(x + LOG_EPS), in the torch step and the compiled one.
LOG_EPS = 1e-6
SIGNAL_SCALE = 0.25
ACTION_MODES = ('residual', 'full')
IB_GAINS = ('loss', 'correct')
ACTION_CHANGES = ('norm', 'distribution')


@dataclass
class AuraConfig:
    feature_dim: int                 # width of the backbone features fed to the memory
    action_dim: int                  # width of the action (or of the class logits)
    kind: str = 'aura'               # which memory arm, one of MEMORY_KINDS
    d_key: int = 32                  # rows of the fast-weight matrix W
    d_value: int = 32                # columns of W, and width of the fast bias vector
    read_heads: int = 3              # queries reading W per step; the head sees all readouts
                                     # (read_heads * d_value wide). Parameters, not state.
    nonlinear_keys: bool = True      # keys, queries and values also read phi(f) (the
                                     # LayerNorm-GELU feature projection), not only f
    value_hidden: int = 64           # > 0: the value to write is conditioned on what memory
                                     # holds, v = W_v f + MLP([W q_v + b, phi(f)]) (a small MLP
                                     # of this width); 0: v = W_v f (plain delta rule)
    action_mode: str = 'residual'    # 'residual': base action + head; 'full': head alone
    feature_proj_dim: int = 64       # features seen by the head and the gate after projection
    head_hidden: int = 128           # hidden width of the action head
    gate_hidden: int = 32            # hidden width of the write gate
    gate_threshold: float = 0.5      # inference: write iff gate probability > threshold
    gate_feature_bound: float = 1.0  # aura: the features move the gate logit by at most this
    action_change: str = 'norm'      # how the gate measures the change a write would cause in
                                     # an action: 'norm' (continuous actions: |change of the
                                     # head output|) or 'distribution' (categorical actions, the
                                     # outputs are logits: total-variation distance between the
                                     # two softmax distributions, 0..1)
    write_rate: float = 0.05         # budget of the random/periodic/skip arms (writes per step)
    gru_hidden: int = 128            # state width of the dense GRU baseline
    residual_scale: float = 1.0      # scale of the head output in residual mode
    # Training objective (used by core.training; stored so a checkpoint says how it was made).
    target_write_rate: float = 0.05  # the rate penalty acts above this write rate
    sparsity_weight: float = 0.0     # weight of the penalty on the write rate above target:
                                     # off in the recipe (a cap shut gates for good; the write
                                     # price alone keeps them selective, core/training.py)
    budget_weight: float = 10.0      # skip_budget: weight of the pull of its write rate onto
                                     # its budget (write_rate)
    write_cost: float = 0.5          # price of one write (L1 on the gate), in loss units
    ib_weight: float = 1.0           # weight of the action-information term (reward writes
                                     # that improve the next action, penalise ones that hurt)
    ib_gain: str = 'loss'            # how a write's effect on an action is scored: 'loss' (the
                                     # task loss drops) or 'correct' (classification: the action
                                     # becomes right; a more confident right action gains 0)
    ib_horizon: int = 1              # actions a write is judged on: 1 = the step's own action,
                                     # H = the next H actions, 0 = every later step (delayed
                                     # tasks: a cue whose action comes after a delay)

    def __post_init__(self):
        def positive_int(name):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f'AuraConfig.{name} must be a positive integer, got {value!r}')
        for name in ('feature_dim', 'action_dim', 'd_key', 'd_value', 'feature_proj_dim',
                     'head_hidden', 'gate_hidden', 'gru_hidden', 'read_heads'):
            positive_int(name)
        if not isinstance(self.value_hidden, int) or self.value_hidden < 0:
            raise ValueError(f'AuraConfig.value_hidden must be an integer >= 0, got '
                             f'{self.value_hidden!r}')
        if not isinstance(self.ib_horizon, int) or self.ib_horizon < 0:
            raise ValueError(f'AuraConfig.ib_horizon must be an integer >= 0, got '
                             f'{self.ib_horizon!r}')
        if self.ib_gain not in IB_GAINS:
            raise ValueError(f'AuraConfig.ib_gain must be one of {IB_GAINS}, got '
                             f'{self.ib_gain!r}')
        if self.action_change not in ACTION_CHANGES:
            raise ValueError(f'AuraConfig.action_change must be one of {ACTION_CHANGES}, got '
                             f'{self.action_change!r}')
        if self.kind not in MEMORY_KINDS:
            raise ValueError(f'AuraConfig.kind must be one of {MEMORY_KINDS}, got {self.kind!r}')
        if self.action_mode not in ACTION_MODES:
            raise ValueError(f'AuraConfig.action_mode must be one of {ACTION_MODES}, '
                             f'got {self.action_mode!r}')
        for name in ('gate_threshold', 'write_rate', 'target_write_rate'):
            value = getattr(self, name)
            if not 0.0 < value < 1.0 and not (name == 'write_rate' and value == 1.0):
                raise ValueError(f'AuraConfig.{name} must lie in (0, 1), got {value!r}')
        for name in ('sparsity_weight', 'budget_weight', 'write_cost', 'ib_weight',
                     'residual_scale', 'gate_feature_bound'):
            if getattr(self, name) < 0:
                raise ValueError(f'AuraConfig.{name} must be >= 0, got {getattr(self, name)!r}')

    @property
    def is_fast_weight(self):
        return self.kind in FAST_WEIGHT_KINDS

    @property
    def is_gated(self):
        """A learned write gate (trained with the write objective)."""
        return self.kind in GATED_KINDS

    def fast_weight_state_bytes(self, bytes_per_element=4):
        """(d_k * d_v + d_v) * 4 bytes: W and the fast bias, fp32, batch 1."""
        return (self.d_key * self.d_value + self.d_value) * bytes_per_element

    def to_json(self):
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f'unknown AuraConfig fields in checkpoint: {unknown}')
        return cls(**data)
