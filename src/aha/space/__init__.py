"""What the web demo (``spaces/aha-explain/app.py``, a Gradio app in the Hub Space layout) needs from the library,
kept apart from the page so it is tested without a browser:

- :mod:`aha.space.uploads`: an uploaded file read as one still image, or refused with a message for the page;
- :mod:`aha.space.comparison`: the top classes, then AHA and comparison methods on one image for one class,
  timed and scored with the pipeline's protocol;
- :mod:`aha.space.demo_explainer`: the default explainer, the one ``aha demo`` trained and cached (trained first
  when absent), and its AHA Shapes examples.

None of these imports Gradio: ``pip install "aha-explain[space]"`` adds it for the page.
"""
