"""The networks, in plain PyTorch, behind one decoding interface.

* :mod:`~symlit.models.base`: the shared config fields, :class:`~symlit.models.base.DecodingModel`
  (what decoding, evaluation and training use) and the base module (embedding, positions, head);
* :mod:`~symlit.models.seq2seq` and :mod:`~symlit.models.causal`: the encoder-decoder and the
  decoder-only transformer;
* :mod:`~symlit.models.layers`, :mod:`~symlit.models.attention`, :mod:`~symlit.models.masks`,
  :mod:`~symlit.models.cache`, :mod:`~symlit.models.positions`: blocks, attention, masks, the KV
  cache and the position schemes both models use;
* :mod:`~symlit.models.linear`: ``nn.Linear`` with the oneDNN CPU inference path;
* :mod:`~symlit.models.builder` and :mod:`~symlit.models.checkpoint`: a model from a ``model``
  config, and model, tokenizer and task from a checkpoint.
"""
