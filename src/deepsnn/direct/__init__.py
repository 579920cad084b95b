"""Direct training, spatial approach: the spiking CNN and its training loop."""
