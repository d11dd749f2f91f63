"""`evaluate` module: deletion / insertion faithfulness of attribution maps (the aha-explain engine).

Load it offline with ``evaluate.load(aha.metrics.EVALUATE_MODULE_PATH)``. Every input is a column of the
module's store, so ``add_batch`` over a dataset and one ``compute`` on everything give the same numbers;
the classifier (and its normalisation, for the "black" reference and Chefer's metrics) is passed to
``compute``. The numbers come from :mod:`aha.metrics` of the installed ``aha-explain`` package.
"""

import datasets
import evaluate
import numpy as np
import torch

from aha.metrics import PERTURBATION_METRICS, PerturbationProtocol, check_inputs, predict
from aha.validation import check_classes


_DESCRIPTION = """
Faithfulness of attribution maps for an image classifier, by perturbation: pixels are removed (or
inserted) in the order the map ranks them and the classifier's softmax probability of the target class
is recorded at each fraction; the metric is the trapezoid area under that curve. Deletion (most relevant
first towards a reference; low is good) and insertion (least-relevant-first deletion, or RISE's insertion
into a blurred image; high is good) follow the AHA evaluation protocol: 21 fractions, hard ranking over all
pixels with a seeded tie-break, mean-colour reference by default. Chefer et al.'s positive/negative
perturbation (top-1 accuracy against the label, fractions 0..0.9) are available too.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: attribution maps, one (H, W) or patch-grid (h, w) float array per image; higher = more
        relevant.
    references: int class labels, one per image, each in [0, num_labels) of the classifier (checked even when
        target="predicted" and no chosen metric reads them).
    pixel_values: the images, one (C, H, W) float array per image, in the classifier's normalised space.
    model: the Hugging Face image classifier (keyword of `compute`, required).
    metrics: which metrics to report, a non-empty list of "deletion", "insertion", "positive", "negative".
        Default ("deletion", "insertion").
    target: class whose probability deletion/insertion track: "predicted" (default) or "label".
    The other keywords are fields of `aha.metrics.PerturbationProtocol`, with its defaults:
    reference: "mean" (default), "black" or "blur": what deleted pixels become.
    insertion_convention: "lrf" (default, least-relevant-first deletion) or "rise" (insertion into the
        blurred image).
    image_processor / image_mean, image_std: the normalisation of pixel_values; needed by "black",
        "positive" and "negative".
    fractions: ascending fractions in [0, 1] for deletion/insertion (default 0, 0.05, ..., 1).
    chunk_size: images per classifier forward (default 64).
    seed: seed of the ranking's tie-break (default 0).
Returns:
    For each metric NAME: `NAME_auc` (dataset mean AUC), `NAME_aucs` (per image),
    `NAME_curve` (mean curve) and `NAME_fractions`.
Examples:
    >>> import evaluate, aha.metrics
    >>> metric = evaluate.load(aha.metrics.EVALUATE_MODULE_PATH)
    >>> for batch in loader:  # doctest: +SKIP
    ...     metric.add_batch(predictions=maps, references=batch["labels"], pixel_values=batch["pixel_values"])
    >>> results = metric.compute(model=classifier)  # doctest: +SKIP
    >>> results["deletion_auc"], results["insertion_auc"]  # doctest: +SKIP
"""

_CITATION = """
@inproceedings{petsiuk2018rise,
  title={RISE: Randomized Input Sampling for Explanation of Black-box Models},
  author={Petsiuk, Vitali and Das, Abir and Saenko, Kate},
  booktitle={BMVC},
  year={2018}
}
@inproceedings{chefer2021transformer,
  title={Transformer Interpretability Beyond Attention Visualization},
  author={Chefer, Hila and Gur, Shir and Wolf, Lior},
  booktitle={CVPR},
  year={2021}
}
"""

METRICS = tuple(PERTURBATION_METRICS)
#: the keywords of ``compute`` that set how the curves are measured: fields of ``PerturbationProtocol``, which
#: holds their defaults
PROTOCOL_OPTIONS = (
    "reference",
    "insertion_convention",
    "fractions",
    "image_processor",
    "image_mean",
    "image_std",
    "chunk_size",
    "seed",
)


def _tensor(values) -> torch.Tensor:
    return values if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))


def _float_array(ndim):
    feature = datasets.Value("float32")
    for _ in range(ndim):
        feature = datasets.Sequence(feature)
    return feature


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DeletionInsertion(evaluate.Metric):
    """Deletion / insertion AUCs (and Chefer's positive / negative perturbation) of attribution maps."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": _float_array(2),
                    "references": datasets.Value("int64"),
                    "pixel_values": _float_array(3),
                }
            ),
            reference_urls=["https://arxiv.org/abs/1806.07421", "https://arxiv.org/abs/2012.09838"],
        )

    def add_batch(self, *, predictions=None, references=None, pixel_values=None, **kwargs):
        """Check the batch as the direct API (``aha.metrics``) checks its inputs, before the module's store
        casts anything (uint8 images to float, float labels to int), then add it. (A missing or unknown
        input is left to ``evaluate``'s own message.)"""
        if all(value is not None for value in (predictions, references, pixel_values)):
            check_inputs(_tensor(pixel_values), _tensor(predictions), _tensor(references), "references")
        super().add_batch(predictions=predictions, references=references, pixel_values=pixel_values, **kwargs)

    def add(self, *, prediction=None, reference=None, pixel_values=None, **kwargs):
        """Check one example as :meth:`add_batch` checks a batch, then add it."""
        if all(value is not None for value in (prediction, reference, pixel_values)):
            check_inputs(_tensor([pixel_values]), _tensor([prediction]), _tensor([reference]), "references")
        super().add(prediction=prediction, reference=reference, pixel_values=pixel_values, **kwargs)

    def _compute(
        self,
        predictions,
        references,
        pixel_values,
        model=None,
        metrics=("deletion", "insertion"),
        target="predicted",
        **options,
    ):
        unexpected = [name for name in options if name not in PROTOCOL_OPTIONS]
        if unexpected:
            raise TypeError(
                f"unexpected compute keywords {unexpected}; besides model, metrics and target: {PROTOCOL_OPTIONS}"
            )
        if model is None:
            raise ValueError("pass the classifier: compute(model=...)")
        if isinstance(metrics, str) or not len(metrics):
            raise ValueError(f"metrics must be a non-empty list of names from {METRICS}, got {metrics!r}")
        unknown = [name for name in metrics if name not in METRICS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; expected any of {METRICS}")
        if target not in ("predicted", "label"):
            raise ValueError(f"target must be 'predicted' or 'label', got {target!r}")
        images = torch.from_numpy(np.asarray(pixel_values, dtype=np.float32))
        maps = torch.from_numpy(np.asarray(predictions, dtype=np.float32))
        labels = torch.from_numpy(np.asarray(references, dtype=np.int64))
        # every reference is a class of this classifier, whether or not the chosen metrics read it
        check_classes(labels, len(labels), getattr(getattr(model, "config", None), "num_labels", None), "references")
        protocol = PerturbationProtocol(**options)  # the defaults are the protocol's own
        classes = labels
        if target == "predicted" and {"deletion", "insertion"} & set(metrics):
            classes = predict(model, images, protocol.chunk_size)
        results = {}
        for name in metrics:
            result = protocol.measure(name, model, images, maps, target=classes, labels=labels)
            results.update(
                {
                    f"{name}_auc": result.mean_auc,
                    f"{name}_aucs": result.auc.tolist(),
                    f"{name}_curve": result.mean_curve.tolist(),
                    f"{name}_fractions": result.fractions.tolist(),
                }
            )
        return results
