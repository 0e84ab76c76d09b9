"""The engine's compiled hot loop (src/dpas/engine/_engine.c); everything else is pyproject.toml.

The extension is optional: without a C compiler and Python's headers dpas still installs, and
the engine says what is missing when asked to run (dpas.engine.native).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "dpas.engine._engine",
            sources=[
                "src/dpas/engine/_engine.c",
                "src/dpas/engine/policy_core.c",
                "src/dpas/engine/replay.c",
            ],
            depends=["src/dpas/engine/policy_core.h", "src/dpas/engine/replay.h"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            extra_link_args=["-pthread"],
            optional=True,
        )
    ]
)
