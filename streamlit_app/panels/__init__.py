"""The Methods page's panels, one feature each: the method table, embed + index, the autoencoder, tuning."""
