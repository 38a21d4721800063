"""What a user runs: load a compiled network, stream inputs through a backend, check it.

    from runtime import run, verify
    result = run(net, batch, backend="golden")          # RunResult: outputs, probes, saturations
    report = verify(net, "model-dir", batch)            # VerifyReport: the fields of verify --json
"""

from runtime.run import RunResult, run
from runtime.verify import VerifyReport, verify

__all__ = ["run", "RunResult", "verify", "VerifyReport"]
