"""``aha evaluate``: the faithfulness table of any attribution method on any dataset split, on one process or
under ``accelerate launch`` on many.

    aha evaluate --model org/aha-vit-b16 --dataset_name ILSVRC/imagenet-1k --split validation --streaming \
        --methods aha,rise,chefer --protocol paper --output_dir eval/

Writes to ``--output_dir``:

- ``per_image.jsonl``: one row per (image, method): the image's index in the split, the method, the target, the
  label, every metric (``datasets.load_dataset("json", data_files=...)`` loads it);
- ``summary.json`` / ``summary.md``: means, standard errors and paired differences between methods, computed from
  the per-image file alone (the same however the work was split);
- ``journal/``: the rows each process appended as its batches finished; a stopped run started again with the same
  settings resumes from it and skips the finished images;
- ``evaluation_settings.json``: the settings the rows were measured with.

Localisation: with a mask column (``--mask_column_name``, default ``mask``: one binary mask per row at its image's
size, e.g. an image of mode ``"1"``), ``--metrics`` also takes ``pointing_game`` and ``mask_auroc``
(:data:`aha.metrics.LOCALISATION_METRICS`); each mask goes through the classifier's image processor with its image
(nearest-neighbour). A split without one evaluates the other metrics; asking it for these is refused naming its
columns.

``--update_card DIR`` / ``--push_to_hub`` write AHA's results into the explainer's model card as ``EvalResult`` s.

Sharding: ``datasets.distributed.split_dataset_by_node`` gives each process a contiguous block of a map-style split;
a stream is split by examples (every process reads the whole stream and keeps every ``num_processes``-th example),
so that each image's index is its position in the split whatever the number of processes. Random draws are seeded
per image index (:mod:`aha.evaluation.scoring`), so the rows do not depend on the sharding or the batch size.
"""

from .arguments import build_parser
from .run import evaluate, main


__all__ = ["build_parser", "evaluate", "main"]
