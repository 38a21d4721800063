"""tripartite compiler: attention graphs, process graphs and the passes between them.

``compiler.compile(source, ...)`` is the entry point (see :mod:`compiler.api`).
"""

__all__ = ["compile"]


def __getattr__(name):
    if name == "compile":
        from compiler.api import compile

        return compile
    raise AttributeError(f"module 'compiler' has no attribute {name!r}")
