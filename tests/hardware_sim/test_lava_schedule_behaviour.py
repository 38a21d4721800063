"""What each phase of the Lava schedule can see, checked by running Lava's fixed_pt models: a causal
read of token t sees no later token, a bidirectional read sees every token, and a sequence sees
nothing of the sequence before it (circuits reset at its first write)."""

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.models import LlamaConfig, random_bert, random_llama
from hardware_sim.lava.runner import run_lava

pytestmark = pytest.mark.lava


def three_sequences(graph, T=6):
    """Sequences 0 and 2 equal, sequence 1 differs from them in its last token only."""
    ids = np.tile(np.arange(3, 3 + T), (3, 1))
    ids[1, -1] = 40
    return graph.encoder.encode(ids)


@pytest.mark.parametrize("causal", [True, False])
def test_what_each_read_sees(causal):
    graph = random_llama(LlamaConfig(num_hidden_layers=1), seed=3) if causal else random_bert(seed=3)
    net = compile_model(graph, max_tokens=8, precision="loihi2")
    x = three_sequences(graph)
    out = run_lava(net, x, precision="loihi2", timeout=300).outputs
    y = out["logits"] if causal else out["hidden"]
    np.testing.assert_array_equal(y[2], y[0])  # nothing of sequence 1 reaches sequence 2
    if causal:
        np.testing.assert_array_equal(y[1, :-1], y[0, :-1])  # reads before the last write do not see it
        assert not np.array_equal(y[1, -1], y[0, -1])
    else:
        assert not np.array_equal(y[1, 0], y[0, 0])  # the first read comes after the last write
