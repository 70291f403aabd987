"""Efficient GANs — a hands-on workbook: the library behind the notebooks.

One module per idea (see README.md for the map):

- ``data``        datasets, downloads, embedded fallbacks
- ``models``      DCGAN and CycleGAN generators/discriminators
- ``losses``      GAN losses
- ``diffaugment`` Differentiable Augmentation
- ``engine``      the one training loop: devices, torchrun/DDP, checkpoints, load_model
- ``tasks``       what is model-specific in training (DCGAN, CycleGAN, ...)
- ``train``       DCGAN training, the names the notebooks use
- ``recording``   recorded compared runs: summaries over seeds, verdicts
- ``monitor``     discriminator-overfitting monitor
- ``metrics``     FID/KID, precision/recall, density/coverage
- ``compress``    MACs/params profiling, quantization, pruning
- ``presets``     ci / class / full sizes for every long step
- ``zoo``         the cache of trained models
- ``report``      headline figures written by every notebook
- ``widgets``     ipywidgets factories
- ``plotting``    image grids and curves
- ``grade``       the autograder
"""

__version__ = "0.2.0"
