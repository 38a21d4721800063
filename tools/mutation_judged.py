"""Surviving mutants judged equivalent to the original (no test can tell them apart), with the reason.

``JUDGED[name] = (text of the mutated line, reason)``: a survivor is listed as judged only while its
mutated line still contains that text (mutmut numbers mutants per function, so an edit of the
function renumbers them and the judgement lapses until it is made again).
"""

JUDGED: dict[str, tuple[str, str]] = {}
