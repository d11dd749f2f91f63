"""Reading and writing files: nothing is ever unpickled, and every file is written atomically.

- :mod:`~aha.persistence.atomic_writer`: the one writer every file the library writes goes through (temporary
  name, flush, rename), and the folders it writes into (symbolic links refused).
- :mod:`~aha.persistence.safe_readers`: JSON and safetensors readers whose errors name the damaged file.
- :mod:`~aha.persistence.strict_loading`: loading transformers checkpoints strictly (safetensors only, no
  weight missing or NaN, no custom code): the classifier to explain, and a saved explainer's files.
- :mod:`~aha.persistence.fingerprints`: digests of what decides an explainer's maps, recorded at saving and
  checked at loading.
- :mod:`~aha.persistence.explainer_saving`: ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` of
  :class:`~aha.AHAExplainer` (self-contained or decoder-only saves).
- :mod:`~aha.persistence.model_cards`: model cards with faithfulness results, from the templates in
  ``aha.hub_cards``.
- :mod:`~aha.persistence.hub_upload`: uploading a saved explainer and its card to the Hub in one commit.

Training checkpoints (:mod:`aha.training.checkpointing`) are training's own and written through the same writer.
"""
