"""ANN-to-SNN conversion: the VGG, its training, threshold calibration, conversion and the chain simulator."""
