"""Check that Lava imports and runs one time step of a process (used by ``make setup``)."""

from __future__ import annotations

import sys


def main() -> int:
    import numpy as np
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.lif.process import LIF

    lif = LIF(shape=(2,), bias_mant=np.array([1.0, 2.0]), vth=10.0)
    try:
        lif.run(condition=RunSteps(num_steps=1), run_cfg=Loihi2SimCfg())
        v = lif.v.get()
    finally:
        lif.stop()
    if not np.allclose(v, [1.0, 2.0]):
        print(f"check_lava: unexpected LIF state after one step: {v}", file=sys.stderr)
        return 1
    print(f"check_lava: Lava runs (one LIF step, v = {v.tolist()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
