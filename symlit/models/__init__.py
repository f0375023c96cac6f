"""The networks: the encoder-decoder and decoder-only transformers, their layers and position
schemes, the builder and the checkpoint loader."""
