"""Looking at trained models: ``symlit-eval``, ``symlit-predict``, ``symlit-inspect``,
``symlit-compare``, the W&B dashboard and the plots."""
