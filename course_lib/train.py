"""Training a DCGAN, with or without DiffAugment: the names notebooks 01-04 use.

The code lives in :mod:`course_lib.tasks.dcgan` (the DCGAN task of the training engine,
:mod:`course_lib.engine`); this module keeps the short import the notebooks teach::

    from course_lib import train
    result = train.train_gan(data, train.TrainConfig(steps=500, augment="diffaugment"))

See :mod:`course_lib.tasks.dcgan` for the table of the four augmentation strategies.
"""
from course_lib.engine.ema import ema_decay, recalibrate_batchnorm, update_ema
from course_lib.tasks.dcgan import (STRATEGIES, DCGANTask, TrainConfig, TrainResult,
                                    build_models, d_step_inputs, discriminator_loss,
                                    fixed_latents, freeze_discriminator_layers, generate,
                                    generator_loss, images_of, model_specs, stack_images,
                                    train_gan, train_step)

__all__ = [
    "STRATEGIES", "TrainConfig", "TrainResult", "DCGANTask", "train_gan", "train_step",
    "discriminator_loss", "generator_loss", "d_step_inputs", "fixed_latents", "generate",
    "stack_images", "images_of", "build_models", "model_specs", "freeze_discriminator_layers",
    "ema_decay", "update_ema", "recalibrate_batchnorm",
]
