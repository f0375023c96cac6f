"""From a model to verdicts, usable without Lightning: decoding (greedy, beam, sampling), the
verifier pool, shared scoring and metric names, and the evaluation report."""
