"""Sharded run and verify: same outputs as one run, across worker counts and a Dask cluster; failed
shards named by their lines; --resume recomputes nothing; verify's statistics merged exactly."""

import json

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.models import random_bert
from runtime.cli import main

TEXTS = ["a b c", "d e f g h", "i", "j k l m n o p", "q r", "s t u v", "w x y z", "a c e g i k"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, tokenized):
    root = tmp_path_factory.mktemp("shards")
    graph = tokenized(random_bert(seed=3))
    graph.save(root / "bert.tpg")
    compile_model(graph, max_tokens=16, precision="float64").save(root / "bert.tpn")
    compile_model(graph, max_tokens=16, precision="loihi2").save(root / "bert-int.tpn")
    (root / "texts.txt").write_text("\n".join(TEXTS[:4]) + "\n\n" + "\n".join(TEXTS[4:]) + "\n")
    (root / "texts.jsonl").write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(TEXTS)))
    return root


def load(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def run(files, out, *extra, net="bert.tpn", source=("--text-file", "texts.txt")):
    return main(["run", str(files / net), source[0], str(files / source[1]), "-o", str(out), *extra])


def test_shards_match_one_run_on_real_tokens(files, tmp_path):
    assert run(files, tmp_path / "one.npz", "--plots", str(tmp_path / "plots")) == 0  # unsharded path
    assert run(files, tmp_path / "three.npz", "--shard-size", "3", "--workers", "1") == 0
    one, three = load(tmp_path / "one.npz"), load(tmp_path / "three.npz")
    assert set(one) == set(three)
    np.testing.assert_array_equal(one["mask"], three["mask"])
    np.testing.assert_array_equal(one["input_ids"], three["input_ids"])  # padding ids included
    mask = one["mask"]
    np.testing.assert_allclose(three["hidden"][mask], one["hidden"][mask], rtol=0, atol=1e-12)
    np.testing.assert_allclose(three["embeddings"], one["embeddings"], rtol=0, atol=1e-12)
    assert not (tmp_path / "three.npz.shards").exists()


def test_jsonl_text_field_is_read(files, tmp_path):
    assert run(files, tmp_path / "t.npz", "--shard-size", "5", "--workers", "1") == 0
    assert run(files, tmp_path / "j.npz", "--shard-size", "5", "--workers", "1",
               source=("--text-file", "texts.jsonl")) == 0
    assert (tmp_path / "t.npz").read_bytes() == (tmp_path / "j.npz").read_bytes()


def test_two_worker_dask_cluster_equals_serial_run_byte_for_byte(files, tmp_path):
    assert run(files, tmp_path / "serial.npz", "--shard-size", "2", "--workers", "1", net="bert-int.tpn") == 0
    assert run(files, tmp_path / "dask.npz", "--shard-size", "2", "--workers", "2", net="bert-int.tpn") == 0
    assert (tmp_path / "serial.npz").read_bytes() == (tmp_path / "dask.npz").read_bytes()


def test_failed_shard_is_named_others_kept_and_resume_recomputes_only_it(files, tmp_path, capsys):
    texts = list(TEXTS)
    texts[4] = " ".join(["word"] * 40)  # 42 tokens > 16 slots: shard 2 (lines 5-6) fails
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n")
    out = tmp_path / "out.npz"
    args = ["run", str(files / "bert.tpn"), "--text-file", str(src), "-o", str(out), "--shard-size", "2",
            "--workers", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "shard 2 (lines 5-6" in err and "1 of 4 shard(s)" in err and "--resume" in err
    shard_dir = tmp_path / "out.npz.shards"
    manifest = json.loads((shard_dir / "manifest.json").read_text())
    assert [manifest["shards"][str(i)]["status"] for i in range(4)] == ["done", "done", "failed", "done"]
    kept = {p.name: p.stat().st_mtime_ns for p in shard_dir.glob("shard-*.npz")}
    assert len(kept) == 3 and not out.exists()
    assert main(args) == 2 and "--resume" in capsys.readouterr().err  # a plain rerun does not discard them
    src.write_text("\n".join(TEXTS) + "\n")
    assert main([*args, "--resume"]) == 0
    assert not shard_dir.exists()
    assert run(files, tmp_path / "ref.npz", "--shard-size", "2", "--workers", "1") == 0
    assert out.read_bytes() == (tmp_path / "ref.npz").read_bytes()


def test_resume_with_other_options_is_refused(files, tmp_path, capsys):
    out = tmp_path / "o.npz"
    shard_dir = tmp_path / "o.npz.shards"
    shard_dir.mkdir()
    (shard_dir / "manifest.json").write_text(json.dumps({"version": 1, "fingerprint": {"backend": "lava"},
                                                        "shards": {}}))
    assert run(files, out, "--resume", "--workers", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "backend" in err[0] and "different" in err[0]


def test_truncate_cuts_long_texts_to_the_slots(files, tmp_path, capsys):
    src = tmp_path / "long.txt"
    src.write_text("short one\n" + " ".join(["word"] * 40) + "\n")
    out = tmp_path / "long.npz"
    assert main(["run", str(files / "bert.tpn"), "--text-file", str(src), "-o", str(out)]) == 2
    assert "16" in capsys.readouterr().err
    assert main(["run", str(files / "bert.tpn"), "--text-file", str(src), "-o", str(out), "--truncate"]) == 0
    data = load(out)
    assert data["mask"].sum(axis=1).tolist() == [4, 16]
    assert data["input_ids"][1, 15] == data["input_ids"][0, 3]  # the last kept token is [SEP]


def test_memory_estimate_refuses_and_force_overrides(files, tmp_path, capsys, monkeypatch):
    import runtime.limits as limits

    monkeypatch.setattr(limits, "available_memory", lambda: 1000)
    out = tmp_path / "m.npz"
    assert run(files, out, "--workers", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GiB" in err[0] and "--force" in err[0]
    assert run(files, out, "--workers", "1", "--force") == 0


def test_sharded_verify_report_equals_one_verify(files, tmp_path):
    one, many = tmp_path / "one.json", tmp_path / "many.json"
    common = ["verify", str(files / "bert-int.tpn"), "--reference", str(files / "bert.tpg"), "--text-file",
              str(files / "texts.txt")]
    assert main([*common, "--json", str(one), "--plots", str(tmp_path / "p")]) in (0, 1)
    assert main([*common, "--json", str(many), "--shard-size", "3", "--workers", "1"]) in (0, 1)
    a, b = json.loads(one.read_text()), json.loads(many.read_text())
    assert (a["tokens"], a["sequences"], a["passed"]) == (b["tokens"], b["sequences"], b["passed"])
    pairs = [(a["output"], b["output"]), (a["agreement"], b["agreement"])]
    pairs += list(zip(a["layers"], b["layers"], strict=True))
    for x, y in pairs:
        for key, value in x.items():
            if isinstance(value, float):  # integer backend: only the float reference's rounding differs
                assert y[key] == pytest.approx(value, rel=1e-9), key
    assert a["saturations_by_node"] == b["saturations_by_node"]
    assert not (tmp_path / "many.json.shards").exists()


@pytest.mark.parametrize("task", ["encoder", "decoder", "classifier"])
def test_merged_statistics_equal_those_of_the_whole(task):
    from runtime.inputs import Batch
    from runtime.shards.merge import merge_agreement, merge_error, sufficient_stats
    from runtime.verify import error_stats, task_agreement

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5, 6)), rng.normal(size=(7, 5, 6))
    mask = rng.random((7, 5)) < 0.7
    mask[:, 0] = True
    cuts = [slice(0, 2), slice(2, 3), slice(3, 7)]
    whole = error_stats("y", a, b, mask)
    merged = merge_error([sufficient_stats("y", a[c], b[c], mask[c]) for c in cuts])
    for key in ("max_abs_err", "rel_l2_err", "cosine_mean", "cosine_min"):
        assert getattr(merged, key) == pytest.approx(getattr(whole, key), rel=1e-14), key
    role = {"encoder": "hidden", "decoder": "logits", "classifier": "logits"}[task]
    labels = rng.integers(0, 6, size=7)
    batch = Batch(a, mask, labels=labels)
    want = task_agreement(task, {role: a}, {role: b}, batch)
    unit = (lambda c: int(mask[c].sum())) if task == "decoder" else (lambda c: c.stop - c.start)
    parts = [{"agreement": task_agreement(task, {role: a[c]}, {role: b[c]}, Batch(a[c], mask[c], labels=labels[c])),
              "agreement_count": unit(c)} for c in cuts]
    got = merge_agreement(parts)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-12), key
