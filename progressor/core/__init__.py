"""The core: models, the engine and its weekly step, the timeline every road folds a
patient's weeks with, and the plugin system. It names no built-in component: those are
plugins (progressor.builtins), registered through the same hooks as a clinic's.

The public API is progressor's own `__all__`; these modules are its implementation.
"""
