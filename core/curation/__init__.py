"""What the team makes of results: labels and their history, precision from labels and from
metadata, similar-item exports, and learnt (tuned) methods."""
