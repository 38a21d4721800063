"""SmolLM2-135M-Instruct from its GGUF file against transformers loading the same file (float32).

transformers reads the file with its own GGUF loader (its name mapping and Q/K row unpermutation);
the model is built from the file's config and the dequantized tensors are loaded into it, which
needs no ``accelerate``.
"""

from __future__ import annotations

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.frontends import load_source, smollm2_gguf
from runtime.generate import Sampling, eos_ids, generate
from runtime.inputs import from_texts
from runtime.run import run
from runtime.session import Session

pytestmark = [pytest.mark.crosscheck, pytest.mark.slow]

PROMPTS = [
    "The capital of France is",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "Astrocytes wrap synapses and",
]
TEXTS = PROMPTS + ["12345 apples, 3.14!", "  two  spaces\tand\nnewlines", "héllo 日本 😀", "<|endoftext|>end",
                   "It's 10:30 — don't be late.", "x1y22z333 a_b"]


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("smollm2")
    (directory / "model.gguf").symlink_to(smollm2_gguf())
    return directory


@pytest.fixture(scope="module")
def hf_model(gguf_dir):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    config = transformers.AutoConfig.from_pretrained(str(gguf_dir), gguf_file="model.gguf")
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    loaded = load_gguf_checkpoint(str(gguf_dir / "model.gguf"), return_tensors=True, model_to_load=model)
    result = model.load_state_dict(loaded["tensors"], strict=False)
    assert result.missing_keys == ["lm_head.weight"] and not result.unexpected_keys  # tied to the embeddings
    model.tie_weights()
    return model.eval()


@pytest.fixture(scope="module")
def compiled():
    graph = load_source(smollm2_gguf())
    return graph, compile_model(graph, precision="float32", max_tokens=40)


def test_token_ids_match_transformers(gguf_dir, compiled):
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file="model.gguf")
    ours = compiled[0].encoder.tokenizer()
    for text in TEXTS:
        assert ours.encode(text).ids == tokenizer(text)["input_ids"], text


def test_float32_logits_and_next_tokens_match_transformers(hf_model, compiled):
    torch = pytest.importorskip("torch")
    graph, net = compiled
    batch = from_texts(net.encoder, PROMPTS)
    ours = run(net, batch, backend="golden").outputs["logits"]
    with torch.no_grad():
        theirs = hf_model(input_ids=torch.tensor(batch.input_ids),
                          attention_mask=torch.tensor(batch.mask.astype(np.int64))).logits.numpy()
    diff, ref = (ours - theirs)[batch.mask], theirs[batch.mask]
    assert np.abs(diff).max() <= 1e-4 * np.abs(ref).max()
    assert np.linalg.norm(diff) <= 1e-4 * np.linalg.norm(ref)
    assert np.array_equal(ours.argmax(-1)[batch.mask], theirs.argmax(-1)[batch.mask])


def test_greedy_generation_matches_transformers(hf_model, compiled):
    torch = pytest.importorskip("torch")
    _, net = compiled
    batch = from_texts(net.encoder, PROMPTS[:1])
    with Session(net, backend="golden") as session:
        ours = generate(session, batch, Sampling(max_new_tokens=8, eos_ids=eos_ids(net.encoder))).generated_ids
    with torch.no_grad():
        theirs = hf_model.generate(torch.tensor(batch.input_ids), max_new_tokens=8, do_sample=False)
    assert ours[0].tolist() == theirs[0, batch.input_ids.shape[1]:].tolist()
