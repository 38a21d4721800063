"""The Lava schedule checked by running it: the plan's process specs and engines (the code the Lava
process models run) stepped in this process with Lava's message timing -- every process first sends
what it computed in the previous step, then receives and computes; the source sends token column
``s - 1`` at step ``s``; a sink reads at step ``s`` what was sent at step ``s`` -- without starting
Lava.  The ``fixed_pt`` outputs must equal the golden ``loihi2`` simulator bit for bit at every
granularity, and what each read phase can see is checked by changing one token.
"""

from types import SimpleNamespace

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.errors import InputError, SimulationError
from compiler.models import BertConfig, LlamaConfig, random_bert, random_llama
from hardware_sim.fixed_point import SaturationCounter
from hardware_sim.golden import simulate
from hardware_sim.lava import GRANULARITIES, lava_steps, make_plan

pytest.importorskip("lava")
from hardware_sim.lava.runner import preload_lava  # noqa: E402

preload_lava()  # imports Lava without changing the caller's multiprocessing start method
from hardware_sim.lava.builder import group_spec, read_outputs, source_data  # noqa: E402
from hardware_sim.lava.engine import Engine  # noqa: E402
from hardware_sim.lava.host_fixed import decode_outputs, encode_inputs  # noqa: E402


class Channel:
    """One stream between processes: the message sent in the current step."""

    def __init__(self, width: int):
        self.value = np.zeros(width)

    def send(self, x):
        self.value = np.asarray(x, dtype=np.float64).copy()

    def recv(self):
        return self.value


def step_plan(net, plan, stream: np.ndarray, tag: str) -> tuple[dict, dict]:
    """Rows each sink reads (n_steps, width) and the saturation counts, from stepping the plan."""
    channels, engines = {plan.source: Channel(stream.shape[-1])}, []
    specs = [group_spec(net, plan, group, "", tag) for group in plan.groups]
    for spec in specs:
        for port in spec.out_ports:
            channels[port.node] = Channel(port.width)
    for spec in specs:
        model = SimpleNamespace(**{p.name: channels[p.node] for p in spec.in_ports + spec.out_ports})
        for var, size in spec.var_sizes.items():
            setattr(model, var, np.zeros(size, dtype=np.int64 if tag == "fixed_pt" else np.float64))
        for kernel in spec.members:
            kernel.prepare()
        engines.append((Engine(spec, model), model))
    data = source_data(plan, stream)
    rows = {role: [] for role in plan.decoders}
    for s in range(1, plan.n_steps + 1):
        channels[plan.source].send(data[:, s - 1])
        for engine, _ in engines:
            for port, node in engine.out_ports:
                port.send(engine.pending[node])
        for engine, _ in engines:
            engine.step(s)
        for role, (src, _) in plan.decoders.items():
            rows[role].append(channels[src].value)
    counts = SaturationCounter()
    for spec, (_, model) in zip(specs, engines):
        counts.merge(dict(zip(spec.count_names, (int(v) for v in np.atleast_1d(getattr(model, "saturations", []))))))
    return {role: np.stack(r) for role, r in rows.items()}, counts.to_dict()


def run_stepped(net, x, mask=None, granularity="fused"):
    """Outputs and saturations of a ``loihi2`` network stepped as its Lava ``fixed_pt`` run."""
    B, T, _ = x.shape
    mask = np.ones((B, T), dtype=bool) if mask is None else mask
    plan = make_plan(net, T, B, mask, granularity, np.float64, "fixed_pt")
    counter = SaturationCounter()
    stream = encode_inputs(net, x, mask, counter)
    rows, counts = step_plan(net, plan, stream, "fixed_pt")
    counter.merge(counts)
    outputs = decode_outputs(net, read_outputs(SimpleNamespace(plan=plan), rows, np.float64), counter)
    return outputs, counter.to_dict()


@pytest.fixture(scope="module")
def nets():
    bert = random_bert(seed=3)
    llama = random_llama(LlamaConfig(num_hidden_layers=1), seed=3)
    return {"bert": (bert, compile_model(bert, max_tokens=8, precision="loihi2")),
            "llama": (llama, compile_model(llama, max_tokens=8, precision="loihi2"))}


def tokens(graph, B=3, T=4, seed=0):
    ids = np.random.default_rng(seed).integers(3, 60, (B, T))
    return graph.encoder.encode(ids)


@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize("name", ["bert", "llama"])
def test_stepped_plan_equals_the_golden_loihi2_run(nets, name, granularity):
    graph, net = nets[name]
    x = tokens(graph)
    mask = np.ones(x.shape[:2], dtype=bool)
    mask[1, 2:] = False  # a padded sequence between two full ones
    got, counts = run_stepped(net, x, mask, granularity)
    want = simulate(net, x, mask, precision="loihi2")
    assert sorted(got) == sorted(want.outputs)
    for role in got:
        np.testing.assert_array_equal(got[role], want.outputs[role])
    assert counts == want.saturations


@pytest.mark.parametrize("name", ["bert", "llama"])
def test_what_each_read_sees(nets, name):
    """Causal: a read of token t sees no later token.  Bidirectional: the first read sees the last
    write.  Either way, a sequence sees nothing of the one before it."""
    graph, net = nets[name]
    x = tokens(graph, T=4)
    x[0] = x[2]
    changed = x.copy()
    changed[1, -1] = graph.encoder.encode(np.array([[59]]))[0, 0]
    changed[0, -1] = changed[1, -1]  # sequence 0 changes too; sequence 2 after it must not
    out_a, _ = run_stepped(net, x, granularity="block")
    out_b, _ = run_stepped(net, changed, granularity="block")
    role = "logits" if name == "llama" else "hidden"
    a, b = out_a[role], out_b[role]
    np.testing.assert_array_equal(a[2], b[2])
    np.testing.assert_array_equal(a[2], a[0])
    if name == "llama":
        np.testing.assert_array_equal(a[1, :-1], b[1, :-1])
        assert not np.array_equal(a[1, -1], b[1, -1])
    else:
        assert not np.array_equal(a[1, 0], b[1, 0])


def test_one_step_plans_and_batches(nets):
    _, net = nets["llama"]
    steps = lava_steps(net, 1)  # one sequence of one token by default, fused
    plan = make_plan(net, 1, 1)
    assert steps == {"total": plan.n_steps, "period": 1, "latency": plan.n_steps - 1, "per_token": plan.n_steps,
                     "processes": 2 + len(net.of_kind("output_decoder")), "delay_values": 0}
    four = lava_steps(net, 3, 4, "fine")
    assert four["per_token"] == pytest.approx(four["total"] / 12)
    assert four["total"] == lava_steps(net, 3, 1, "fine")["total"] + 3 * 3


@pytest.mark.parametrize("tokens_, batch", [(0, 1), (1, 0), (0, 0)])
def test_empty_runs_are_refused(nets, tokens_, batch):
    _, net = nets["bert"]
    with pytest.raises(InputError, match=rf"^need at least one sequence of one token, got batch={batch}, "
                                         rf"tokens={tokens_}$"):
        make_plan(net, tokens_, batch)


def test_more_tokens_than_exact_slots_is_refused(nets):
    _, net = nets["bert"]
    make_plan(net, 8, 1)  # as many tokens as slots is fine
    with pytest.raises(SimulationError, match=r"has 8 slots but the input has 9 tokens; compile with "
                                              r"--max-tokens 9 or more$"):
        make_plan(net, 9, 1)


def test_circuits_that_ignore_the_padding_mask_write_every_token():
    """A circuit without the padding mask writes padded tokens too; stepped and golden runs agree."""
    graph = random_bert(seed=3)
    attention = [op for op in graph.nodes() if op.kind == "attention"]
    assert attention
    for op in attention:
        op.use_padding_mask = False
    net = compile_model(graph, max_tokens=8, precision="loihi2")
    x = tokens(graph, B=2)
    mask = np.ones(x.shape[:2], dtype=bool)
    mask[0, 2:] = False
    got, counts = run_stepped(net, x, mask, "block")
    want = simulate(net, x, mask, precision="loihi2")
    for role in got:
        np.testing.assert_array_equal(got[role], want.outputs[role])
    plan = make_plan(net, 4, 2, mask, "fused")
    feats = [k for k in plan.kernels.values() if k.op.kind == "features"]
    assert feats and all(k.clock.written.all() for k in feats)
    masked = run_stepped(compile_model(random_bert(seed=3), max_tokens=8, precision="loihi2"), x, mask, "block")[0]
    assert not all(np.array_equal(masked[r], got[r]) for r in got)  # the padded tokens did change something


def test_a_plan_without_a_mask_writes_every_token(nets):
    graph, net = nets["bert"]
    x = tokens(graph, B=2)
    plan = make_plan(net, 4, 2, granularity="block")
    feats = [k for k in plan.kernels.values() if k.op.kind == "features"]
    assert feats and all(k.clock.written.shape == (2, 4) and k.clock.written.all() for k in feats)
    got, _ = run_stepped(net, x, None, "block")
    for role, y in simulate(net, x, precision="loihi2").outputs.items():
        np.testing.assert_array_equal(got[role], y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_kernel_computes_in_the_run_dtype(nets, dtype):
    _, net = nets["llama"]
    plan = make_plan(net, 3, 1, dtype=dtype)
    assert plan.kernels and all(k.dtype == dtype for k in plan.kernels.values())


def test_latency_is_one_sequence_per_bidirectional_layer_and_one_step_when_causal():
    """docs/lava_schedule.md: fused, each bidirectional layer adds T steps (plus the source hop);
    a causal decoder's latency is the hop count alone."""
    T = 5
    for layers in (1, 2):
        bert = compile_model(random_bert(BertConfig(num_hidden_layers=layers), seed=1), max_tokens=8)
        assert lava_steps(bert, T)["latency"] == layers * T + 1
    llama = compile_model(random_llama(LlamaConfig(num_hidden_layers=2), seed=1), max_tokens=8)
    assert lava_steps(llama, T)["latency"] == 1


def test_a_missing_schedule_is_named():
    net = compile_model(random_bert(seed=2), max_tokens=8)
    feats = next(op for op in net.nodes() if op.kind == "features")
    feats.schedule = "nowhere"
    with pytest.raises(SimulationError, match=rf"^lava: node '{feats.name}' names schedule 'nowhere', which is "
                                              r"missing$"):
        make_plan(net, 3, 1)
