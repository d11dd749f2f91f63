"""The map's ranking, scored (stages 5-7 of the data flow): pixels ranked softly for training and hard for the
metrics, moved towards a reference, the classifier's score of the target on each perturbed image, the curve's AUC.

- :mod:`aha.ranking.sorting`: Gumbel-Sinkhorn soft sorting and its hard counterpart;
- :mod:`aha.ranking.scores`: the explained score of a class (probability, logit, correct);
- :mod:`aha.ranking.perturbation`: references, masks, the one chunked scorer and the one AUC, shared by the
  objective, the metrics (:mod:`aha.metrics`) and the comparison methods;
- :mod:`aha.ranking.objectives`: the differentiable deletion / insertion objective AHA is trained with;
- :mod:`aha.ranking.refinement`: test-time refinement of maps against that objective.

Nothing is imported here: each module is imported by its own path, so importing one never imports the others.
"""
