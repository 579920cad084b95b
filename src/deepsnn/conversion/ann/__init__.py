"""The ANN that gets converted: the VGG and its training (all that `train_ann` runs of conversion/)."""
