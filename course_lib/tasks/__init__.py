"""Training tasks: what is model-specific about training, for the engine's one loop.

- ``dcgan``    an unconditional DCGAN, four augmentation strategies, fine-tuning/FreezeD
- ``cyclegan`` unpaired translation A <-> B (LSGAN, cycle and identity losses, image pool)

A new model family is a new :class:`course_lib.engine.Task` here; the loop stays as it is.
"""
