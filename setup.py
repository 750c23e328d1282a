"""Builds the relay's C fast path (media_relay/_fastpath.c); everything else is in pyproject.toml.

The extension is optional: without a C compiler the install still succeeds and the relay runs
its pure-Python twin (media_relay/fastpath_py.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "media_relay._fastpath",
            ["media_relay/_fastpath.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wno-missing-field-initializers"],
            optional=True,
        )
    ]
)
