"""Training: the trainers, the weight average, the step's precision and the checkpoint format."""
