"""``tripartite report``: the JSON contract's keys, chip choice, and bad input."""

import json

import pytest

from compiler.api import compile as compile_model
from compiler.models import random_bert
from runtime.cli import main

CONTRACT = ["neurons", "synapses", "bytes", "cores", "chips", "synops_per_token", "energy_per_token_j",
            "latency_per_token_s"]


@pytest.fixture(scope="module")
def net_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "bert.tpn"
    compile_model(random_bert(seed=1), max_tokens=16).save(path)
    return path


def report_json(capsys, *args):
    assert main(["report", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_report_json_has_the_contract_keys(net_path, capsys):
    data = report_json(capsys, str(net_path))
    assert all(key in data for key in CONTRACT)
    assert data["neurons"] > 0 and data["synapses"] > 0 and data["cores"] >= 1 and data["energy_per_token_j"] > 0
    assert data["lava_fused_processes"] < data["lava_fine_processes"]
    assert data["lava_tokens"] == 16


def test_loihi1_needs_at_least_as_many_cores(net_path, capsys):
    loihi2 = report_json(capsys, str(net_path), "--chip", "loihi2")
    loihi1 = report_json(capsys, str(net_path), "--chip", "loihi1")
    assert loihi1["cores"] >= loihi2["cores"]


def test_unknown_chip_is_a_one_line_error(net_path, capsys):
    assert main(["report", str(net_path), "--chip", "loihi9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "loihi9" in err and "\n" not in err


def test_cost_overrides_change_the_energy_estimate(net_path, capsys, tmp_path):
    base = report_json(capsys, str(net_path))
    costs = tmp_path / "costs.json"
    costs.write_text('{"costs": {"synop_energy_j": 1e-9}}')
    dearer = report_json(capsys, str(net_path), "--costs", str(costs))
    assert dearer["energy_per_token_j"] > base["energy_per_token_j"]
    assert dearer["synops_per_token"] == base["synops_per_token"]
    costs.write_text('{"costs": {"synop_energy_j": "lots"}}')
    assert main(["report", str(net_path), "--costs", str(costs)]) == 2
    err = capsys.readouterr().err.strip()
    assert "synop_energy_j" in err and "\n" not in err
