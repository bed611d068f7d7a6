"""Page panels, one feature each: the Methods page's (method table, embed + index, the autoencoder, tuning), the Label
page's verdict buttons and pair queues (verdicts.py) and the Precision page's workbench (evaluation.py)."""
