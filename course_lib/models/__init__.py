"""GAN models: DCGAN (32x32 and 64x64) and the CycleGAN ResNet generator."""
from course_lib.models.cyclegan import ResnetBlock, ResnetGenerator, load_cyclegan_generator
from course_lib.models.dcgan import DCGANDiscriminator, DCGANGenerator

__all__ = [
    "DCGANGenerator",
    "DCGANDiscriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "load_cyclegan_generator",
]
