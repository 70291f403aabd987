"""GAN models: DCGAN (32x32 and 64x64), CycleGAN's generator and PatchGAN discriminator,
the mobile-ResNet generator of GAN Compression, and the registry that rebuilds any of them
from a checkpoint's architecture spec."""
from course_lib.models.cyclegan import (NLayerDiscriminator, ResnetBlock, ResnetGenerator,
                                        init_weights, load_cyclegan_generator)
from course_lib.models.dcgan import DCGANDiscriminator, DCGANGenerator
from course_lib.models.mobile_resnet import MobileResnetGenerator
from course_lib.models.registry import MODEL_CLASSES, build_model, model_spec, register_model

__all__ = [
    "DCGANGenerator",
    "DCGANDiscriminator",
    "MobileResnetGenerator",
    "ResnetBlock",
    "ResnetGenerator",
    "NLayerDiscriminator",
    "init_weights",
    "load_cyclegan_generator",
    "MODEL_CLASSES",
    "register_model",
    "model_spec",
    "build_model",
]
