"""What a user runs: load a compiled network, stream inputs through a backend, check it.

    from runtime import run, verify
    result = run(net, batch, backend="golden")          # RunResult: outputs, probes, saturations
    report = verify(net, "model-dir", batch)            # VerifyReport: the fields of verify --json
    with Session(net) as s:                             # a decoder whose circuit state persists
        step = s.feed(prompt_ids); step = s.feed(next_ids)
"""

from runtime.run import RunResult, run
from runtime.session import Session
from runtime.verify import VerifyReport, verify

__all__ = ["run", "RunResult", "Session", "verify", "VerifyReport"]
