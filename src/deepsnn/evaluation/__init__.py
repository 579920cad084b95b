"""What both evaluation stages run: the accuracy-vs-T simulation, its stored copy, tables, plots, metrics."""
