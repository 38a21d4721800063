"""``tripartite generate`` and ``run --generate``: greedy tokens are the arg-max of a full run,
sampling is seeded, generation stops at the end-of-sequence token, text is decoded incrementally,
chat templates render, bad requests exit 2 with one line."""

import numpy as np
import pytest
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from compiler.api import compile as compile_model
from compiler.models import LlamaConfig, random_bert, random_llama
from compiler.process import ProcessGraph
from hardware_sim.golden import simulate
from runtime.chat import chat_prompt
from runtime.cli import main
from runtime.text_stream import TextStream

EOS = 256


def byte_tokenizer() -> Tokenizer:
    """Byte-level BPE without merges: one token per UTF-8 byte, ``<eos>`` = 256."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<eos>", special=True)])
    return tok


def save_net(path, special=None):
    g = random_llama(LlamaConfig(vocab_size=257, num_hidden_layers=1), seed=4)
    g.encoder.tokenizer_json = byte_tokenizer().to_str()
    g.encoder.special = dict(special or {})
    compile_model(g, max_tokens=24).save(path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("generate")
    save_net(root / "llama.tpn")
    return root


def load(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def generate(files, *extra, net="llama.tpn", text="héllo", out="gen.npz"):
    code = main(["generate", str(files / net), "--text", text, "-o", str(files / out), *extra])
    return code, load(files / out) if code == 0 else None


def test_greedy_tokens_are_the_arg_max_of_a_full_run(files, capsys):
    code, data = generate(files, "--max-new-tokens", "6")
    assert code == 0
    out = capsys.readouterr()
    prompt, new = data["input_ids"][0], data["generated_ids"][0]
    assert new.shape == (6,) and "tokens/s" in out.err
    net = ProcessGraph.load(files / "llama.tpn")
    ids = np.concatenate([prompt, new])[None]
    logits = simulate(net, net.encoder.encode(ids)).outputs["logits"][0]
    assert np.argmax(logits[len(prompt) - 1:-1], axis=1).tolist() == new.tolist()
    text = byte_tokenizer().decode(new.tolist(), skip_special_tokens=True)
    assert data["generated_text"].tolist() == [text] and out.out == text + "\n"


def test_sampling_is_seeded(files):
    runs = [generate(files, "--max-new-tokens", "8", "--temperature", "1.5", "--top-k", "50", "--seed", str(s),
                     out=f"s{i}.npz")[1]["generated_ids"] for i, s in enumerate((1, 1, 2))]
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_stops_at_the_end_of_sequence_token(files):
    first = generate(files, "--max-new-tokens", "4")[1]["generated_ids"][0]
    save_net(files / "eos.tpn", {"eos_token_id": int(first[1])})
    data = generate(files, "--max-new-tokens", "4", net="eos.tpn", out="eos.npz")[1]
    assert data["generated_ids"][0].tolist() == [first[0], first[1], 0, 0]  # the pad id after the end
    assert data["generated_text"].tolist() == [byte_tokenizer().decode([int(first[0]), int(first[1])])]
    longer = generate(files, "--max-new-tokens", "4", "--min-new-tokens", "4", net="eos.tpn", out="min.npz")[1]
    assert first[1] not in longer["generated_ids"][0]


def test_a_batch_continues_each_prompt_as_alone(files):
    two = main(["generate", str(files / "llama.tpn"), "--text", "héllo", "--text", "ab", "--max-new-tokens", "5",
                "-o", str(files / "two.npz")])
    assert two == 0
    both = load(files / "two.npz")["generated_ids"]
    assert np.array_equal(both[0], generate(files, "--max-new-tokens", "5")[1]["generated_ids"][0])
    assert np.array_equal(both[1], generate(files, "--max-new-tokens", "5", text="ab")[1]["generated_ids"][0])


def test_run_generate_writes_the_same_arrays(files):
    with open(files / "ids.npz", "wb") as handle:
        np.savez(handle, input_ids=np.array([[104, 105, 106], [107, 108, 0]]), mask=np.array([[1, 1, 1], [1, 1, 0]],
                                                                                            bool))
    assert main(["run", str(files / "llama.tpn"), "--inputs", str(files / "ids.npz"), "--generate", "3",
                 "-o", str(files / "run.npz")]) == 0
    assert main(["generate", str(files / "llama.tpn"), "--inputs", str(files / "ids.npz"), "--max-new-tokens", "3",
                 "-o", str(files / "gen3.npz")]) == 0
    ran, gen = load(files / "run.npz"), load(files / "gen3.npz")
    for key in ("input_ids", "mask", "generated_ids", "generated_text"):
        assert np.array_equal(ran[key], gen[key]), key
    assert ran["logits"].shape == (2, 3, 257)
    assert ran["generated_ids"][1, 0] == np.argmax(ran["logits"][1, 1])


def test_incremental_text_has_whole_characters():
    tok = byte_tokenizer()
    text = "naïve € 日本"
    stream = TextStream(tok)
    pieces = [stream.push(i) for i in tok.encode(text).ids]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)
    assert pieces.count("") >= 5  # the continuation bytes of ï, € and the two CJK characters wait


def test_chat_template_renders_like_transformers():
    g = random_llama()
    g.encoder.tokenizer_json = byte_tokenizer().to_str()
    g.encoder.special = {"eos_token_id": EOS, "chat_template": (  # block tags on lines of their own
        "{% for m in messages %}\n    {% if m['role'] == 'user' %}\n<|user|>{{ m['content'] }}{{ eos_token }}\n"
        "    {% endif %}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")}
    assert chat_prompt(g.encoder, "hi") == "<|user|>hi<eos>\n<|assistant|>"  # trim_blocks, lstrip_blocks


@pytest.mark.parametrize("extra, message", [
    (["--chat"], "carries no chat template"),
    (["--max-new-tokens", "40"], "--max-tokens 24"),
    (["--temperature", "-1"], "--temperature -1"),
    (["--min-new-tokens", "9", "--max-new-tokens", "4"], "--min-new-tokens 9"),
])
def test_bad_requests_exit_2_with_one_line(files, capsys, extra, message):
    assert main(["generate", str(files / "llama.tpn"), "--text", "hi", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_encoders_cannot_generate(tmp_path, capsys):
    compile_model(random_bert(), max_tokens=8).save(tmp_path / "bert.tpn")
    with open(tmp_path / "ids.npz", "wb") as handle:
        np.savez(handle, input_ids=np.array([[1, 2, 3]]))
    assert main(["generate", str(tmp_path / "bert.tpn"), "--inputs", str(tmp_path / "ids.npz")]) == 2
    assert "cannot take one token at a time" in capsys.readouterr().err
