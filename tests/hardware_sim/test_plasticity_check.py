"""Loihi 2 plasticity check: Lava's own LearningDense learns a compiled network's Hebbian weights."""

import multiprocessing
import os

import numpy as np
import pytest

import compiler
from compiler.errors import InputError
from compiler.models import random_bert
from hardware_sim.lava.plasticity_check import check_plasticity, hebbian_writes

pytestmark = pytest.mark.lava


@pytest.fixture(scope="module")
def favor_net():
    net = compiler.compile(random_bert(seed=4), lowering="favor", features=16, max_tokens=8)
    x = np.random.default_rng(0).normal(size=(1, 7, 32))
    mask = np.ones((1, 7), bool)
    mask[0, 5:] = False
    return net, x, mask


def test_learning_dense_learns_golden_weights(favor_net):
    net, x, mask = favor_net
    result = check_plasticity(net, x, mask)
    assert result.node == "layer0.attn.hebbian" and result.golden.shape == (4, 8, 16)
    # floating_pt: only the traces' decay at tau = 65535 steps, 2/65535 = 3.05e-5 (measured 3.05e-5)
    assert result.errors["floating_pt"] <= 4e-5
    # fixed_pt: 7-bit traces, 8-bit weights (measured 0.11)
    assert result.errors["fixed_pt"] <= 0.2
    # Lava's shared memory is gone (other programs' segments may come and go meanwhile)
    assert not multiprocessing.active_children()
    assert result.segments and not any(os.path.exists(f"/dev/shm/{name.lstrip('/')}") for name in result.segments)


def test_masked_tokens_are_not_written(favor_net):
    net, x, mask = favor_net
    writes = hebbian_writes(net, x, mask)
    assert np.all(writes.pre[5:] == 0) and np.any(writes.pre[:5] > 0)
    H = np.einsum("tgv,tgm->gvm", writes.post, writes.pre)
    assert np.allclose(H, writes.golden, rtol=1e-12, atol=0)


def test_unknown_group_is_refused(favor_net):
    net, x, mask = favor_net
    with pytest.raises(InputError, match="'layer0.attn.astrocyte' is not a Hebbian synapse group"):
        check_plasticity(net, x, mask, node="layer0.attn.astrocyte")
