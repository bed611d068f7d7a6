"""Computing vectors at scale: resumable local embedding, decoding off the model's thread, the Ray
Data job for clusters, and embed + index in one call."""
