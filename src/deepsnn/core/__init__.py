"""What every stage of both pipelines runs: params, data, files, errors, neurons, spike counting."""
