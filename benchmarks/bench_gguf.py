"""SmolLM2-135M-Instruct from its Q4_1 GGUF file: import and compile time, golden float32 speed, and (when
torch and transformers are installed) the float32 logit error and next-token agreement against transformers
loading the same file.

Prints a table and writes benchmarks/results/gguf.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import compiler  # noqa: E402
from compiler.frontends import load_source, smollm2_gguf  # noqa: E402
from runtime.generate import Sampling, eos_ids, generate  # noqa: E402
from runtime.inputs import from_texts  # noqa: E402
from runtime.reference import run_reference  # noqa: E402
from runtime.run import run  # noqa: E402
from runtime.session import Session  # noqa: E402

PROMPTS = [
    "The capital of France is",
    "<|im_start|>user\nWhat is the largest planet in the solar system?<|im_end|>\n<|im_start|>assistant\n",
    "Astrocytes are cells in the brain that",
    "def fibonacci(n):",
]


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def transformers_logits(path: Path, batch):
    """Float32 logits of transformers' own GGUF loader on ``batch``, or ``None`` without torch."""
    try:
        import torch
        import transformers
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "model.gguf").symlink_to(path)
        config = transformers.AutoConfig.from_pretrained(tmp, gguf_file="model.gguf")
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        loaded = load_gguf_checkpoint(str(Path(tmp) / "model.gguf"), return_tensors=True, model_to_load=model)
        model.load_state_dict(loaded["tensors"], strict=False)
        model.tie_weights()
    with torch.no_grad():
        return model.eval()(input_ids=torch.tensor(batch.input_ids),
                            attention_mask=torch.tensor(batch.mask.astype(np.int64))).logits.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--no-transformers", action="store_true", help="skip the comparison with transformers")
    args = parser.parse_args()
    path = smollm2_gguf()
    graph, t_import = timed(lambda: load_source(path))
    net, t_compile = timed(lambda: compiler.compile(graph, precision="float32", max_tokens=128))
    batch = from_texts(net.encoder, PROMPTS)
    tokens = int(batch.mask.sum())
    result, t_golden = timed(lambda: run(net, batch, backend="golden"))
    _, t_reference = timed(lambda: run_reference(graph, batch.x, batch.mask, precision="float32"))
    one = from_texts(net.encoder, PROMPTS[:1])
    with Session(net, backend="golden") as session:
        gen, t_generate = timed(lambda: generate(session, one, Sampling(max_new_tokens=args.new_tokens,
                                                                        eos_ids=eos_ids(net.encoder))))
    row = {
        "model": "SmolLM2-135M-Instruct Q4_1 GGUF", "file_mb": round(path.stat().st_size / 2**20, 1),
        "import_s": t_import, "compile_float32_s": t_compile, "prompts": len(PROMPTS), "prompt_tokens": tokens,
        "golden_float32_s": t_golden, "golden_tokens_per_s": tokens / t_golden,
        "reference_float32_s": t_reference, "golden_vs_reference": t_golden / t_reference,
        "generated_tokens": int(gen.generated_ids.shape[1]), "generate_s": t_generate,
        "generate_tokens_per_s": gen.generated_ids.shape[1] / t_generate,
        "generated_text": net.encoder.tokenizer().decode(gen.generated_ids[0].tolist()),
    }
    theirs = None if args.no_transformers else transformers_logits(path, batch)
    if theirs is not None:
        ours = result.outputs["logits"]
        diff, ref = (ours - theirs)[batch.mask], theirs[batch.mask]
        agree = ours.argmax(-1)[batch.mask] == theirs.argmax(-1)[batch.mask]
        row.update({"logits_max_rel_err": float(np.abs(diff).max() / np.abs(ref).max()),
                    "logits_rel_l2_err": float(np.linalg.norm(diff) / np.linalg.norm(ref)),
                    "next_token_agreement": float(np.mean(agree))})
    width = max(len(k) for k in row)
    for key, value in row.items():
        shown = f"{value:.4g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else value
        print(f"{key:<{width}}  {shown}")
    out = ROOT / "benchmarks" / "results" / "gguf.json"
    out.write_text(json.dumps(row, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
