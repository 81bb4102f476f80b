"""Data: training interactions and recency weights, item embeddings, loaders, and the converter of the
paper's released splits."""
