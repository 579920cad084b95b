"""Deep spiking neural networks two ways: ANN-to-SNN conversion and direct (spatial) training."""
