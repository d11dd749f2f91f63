"""The explainer (stages 3-4 of the data flow): features read out of the frozen classifier, the decoder that turns
them into a map, its configuration, and what the decoder costs next to the classifier.

- :mod:`aha.modeling.backbones`: token grids of several depths read out of the classifier's hidden states;
- :mod:`aha.modeling.configuration_aha` and :mod:`aha.modeling.modeling_aha`: ``AHAConfig`` and ``AHAExplainer``,
  the transformers-style configuration / modeling pair (import them from ``aha``);
- :mod:`aha.modeling.decoder_cost`: the decoder's FLOPs and parameters next to the classifier's, counted.

Nothing is imported here: each module is imported by its own path, so importing one never imports the others.
"""
