"""Compiler passes; the pipeline that orders them is :mod:`compiler.pipeline`."""
