"""Every method, registered by name: zeroshot, linear-probe, coop, cocoop, vpt, maple, upt."""

from upt.methods import cocoop, coop, linear_probe, maple, upt, vpt, zeroshot  # noqa: F401  (fill the registry)
from upt.methods.base import (
    REGISTRY,
    PromptMethod,
    build_method,
    describe_methods,
    get_method_class,
    make_config,
)

__all__ = ["REGISTRY", "PromptMethod", "build_method", "describe_methods", "get_method_class", "make_config"]
