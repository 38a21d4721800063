"""tripartite compiler: attention graphs, process graphs and the passes between them.

``compiler.compile(source, ...)`` is the entry point (see :mod:`compiler.api`);
``compiler.from_torch(module, example_inputs, ...)`` imports a PyTorch module as an attention graph
(see :mod:`compiler.frontends.torch_export`).
"""

__all__ = ["compile", "from_torch"]


def __getattr__(name):
    if name == "compile":
        from compiler.api import compile

        return compile
    if name == "from_torch":
        from compiler.frontends.torch_export import from_torch

        return from_torch
    raise AttributeError(f"module 'compiler' has no attribute {name!r}")
