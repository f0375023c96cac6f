"""From a task to batches: the tokenizer, datasets cached on disk, the DataModule, the leakage
report and ``symlit-generate``."""
