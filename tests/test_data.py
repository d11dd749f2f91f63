"""Data pipeline: columns and labels checked from metadata, collation with the target's processor,
streams split across processes and resumed at the same position."""

import datasets
import numpy as np
import pytest
import torch
import transformers
from accelerate import Accelerator
from conftest import IMAGE_SIZE, NUM_LABELS
from PIL import Image
from training_helpers import image_dataset, processor

from aha.data import (
    ImageClassificationCollator,
    TrainingBatches,
    check_columns,
    class_index_map,
    processed_masks,
    train_dataloader,
)


def test_collator_makes_normalised_batches_and_converts_to_rgb():
    collate = ImageClassificationCollator(processor(), "image", "label", num_labels=NUM_LABELS)
    examples = [{"image": Image.new("L", (50, 40)), "label": 1}, {"image": Image.new("RGB", (20, 30)), "label": 4}]
    batch = collate(examples)
    assert batch["pixel_values"].shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].tolist() == [1, 4]


def _object_mask(height=40, width=50) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[7:23, 11:38] = True
    return mask


def test_masks_go_through_the_processor_as_their_images_nearest_neighbour():
    mask = _object_mask()
    image = Image.new("RGB", (50, 40))
    as_mode_1 = processed_masks([Image.fromarray(mask)], [image], processor(), ["the mask"])
    expected = np.asarray(Image.fromarray(mask).resize((IMAGE_SIZE, IMAGE_SIZE), Image.NEAREST), dtype=bool)
    assert as_mode_1.dtype == torch.bool and as_mode_1.shape == (1, IMAGE_SIZE, IMAGE_SIZE)
    assert (as_mode_1[0].numpy() == expected).all()
    # the same mask stored as 0/255 (mode L), 0/1 integers, or a bool array of an array image
    for other, picture in (
        (Image.fromarray(mask.astype(np.uint8) * 255), image),
        (mask.astype(np.int64), image),
        (mask, np.zeros((40, 50, 3), np.uint8)),
    ):
        assert torch.equal(processed_masks([other], [picture], processor(), ["the mask"]), as_mode_1)


#: image processors of the classifier families AHA and the baselines take: warp, warp and crop, short side and crop,
#: ConvNeXt's crop_pct below and above 384 px, a channel flip (MobileViT), EfficientNet's second normalisation
PROCESSORS = {
    "vit": lambda: processor(),
    "deit": lambda: transformers.DeiTImageProcessorPil(
        size={"height": 36, "width": 36}, crop_size={"height": 32, "width": 32}
    ),
    "bit": lambda: transformers.BitImageProcessorPil(
        size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}
    ),
    "convnext": lambda: transformers.ConvNextImageProcessorPil(size={"shortest_edge": 32}, crop_pct=0.875),
    "convnext_384": lambda: transformers.ConvNextImageProcessorPil(size={"shortest_edge": 384}),
    "mobilevit": lambda: transformers.MobileViTImageProcessorPil(
        size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}
    ),
    "efficientnet": lambda: transformers.EfficientNetImageProcessorPil(size={"height": 32, "width": 32}),
}


@pytest.mark.parametrize("name", PROCESSORS)
def test_masks_land_where_their_images_go_through_each_familys_processor(name):
    image_processor, mask = PROCESSORS[name](), _object_mask()
    picture = Image.fromarray(mask.astype(np.uint8) * 255).convert("RGB")  # the mask drawn as the image itself
    processed = processed_masks([mask], [picture], image_processor, ["the mask"])[0]
    black, white, drawn = image_processor(
        [Image.new("RGB", (50, 40)), Image.new("RGB", (50, 40), (255,) * 3), picture], return_tensors="pt"
    )["pixel_values"][:, 0]
    drawn_object = (drawn - black).abs() > (drawn - white).abs()  # the image's own resampling: nearer white than black
    assert processed.shape == drawn.shape and processed.any() and not processed.all()
    assert (processed == drawn_object).float().mean() > 0.97  # they differ only along the edge (nearest vs smooth)


@pytest.mark.parametrize(
    "mask, message",
    [
        (_object_mask(20, 25), r"the mask of image 3 is 20 x 25 but its image is 40 x 50 \(H x W\)"),
        (
            np.stack([_object_mask()] * 3, axis=-1),
            r"the mask of image 3 has shape \(40, 50, 3\): expected one channel",
        ),
        (
            _object_mask() * 0.5,
            r"the mask of image 3 is not binary: expected values 0 and 1 \(or 0 and 255\), found \[0.0, 0.5\]",
        ),
        (np.where(_object_mask(), np.nan, 0.0), r"is not binary"),
        (Image.fromarray(_object_mask().astype(np.uint8) * 200), r"found \[0, 200\]"),
    ],
)
def test_masks_of_another_size_or_not_binary_are_refused(mask, message):
    with pytest.raises(ValueError, match=message):
        processed_masks([mask], [Image.new("RGB", (50, 40))], processor(), ["the mask of image 3"])


def test_collator_remaps_labels_and_rejects_foreign_ones():
    collate = ImageClassificationCollator(
        processor(), "image", "label", NUM_LABELS, class_index_map=[4, 3, 2, 1, 0, 7]
    )
    assert collate([{"image": Image.new("RGB", (8, 8)), "label": 0}])["labels"].tolist() == [4]
    with pytest.raises(ValueError, match=r"outside the classifier's classes \[0, 5\)"):
        collate([{"image": Image.new("RGB", (8, 8)), "label": 5}])


def test_check_columns_names_what_is_missing():
    dataset = image_dataset(2)
    check_columns(dataset, "image", "label", "train")
    with pytest.raises(ValueError, match="no image column 'img'"):
        check_columns(dataset, "img", "label", "train")
    with pytest.raises(ValueError, match="no label column 'fine_label'.*ground-truth labels"):
        check_columns(dataset.remove_columns("label"), "image", "fine_label", "train")
    with pytest.raises(ValueError, match="expected datasets.Image"):
        check_columns(dataset, "id", "label", "train")


def test_class_index_map_matches_names_then_indices():
    label2id = {"cat": 0, "dog": 1, "fox": 2}
    assert class_index_map(datasets.ClassLabel(names=["dog", "fox"]), label2id, 3) == [1, 2]
    assert class_index_map(datasets.ClassLabel(names=["cat", "dog"]), label2id, 3) is None
    assert class_index_map(datasets.ClassLabel(names=["a", "b"]), label2id, 3) is None
    with pytest.raises(ValueError, match="4 classes but the classifier only 3"):
        class_index_map(datasets.ClassLabel(names=list("abcd")), label2id, 3)


def _ids_collate(examples):
    return {"ids": torch.tensor([example["id"] for example in examples])}


@pytest.mark.parametrize("shuffle_buffer_size", [0, 4])
def test_stream_resumes_at_the_same_position(shuffle_buffer_size):
    """Across an epoch boundary; exact with shard-order shuffling, at most the buffer lost with a buffer."""
    stream = image_dataset(12).remove_columns("image").to_iterable_dataset(num_shards=3)
    accelerator = Accelerator(cpu=True)

    def batches():
        loader = train_dataloader(
            stream, _ids_collate, 2, accelerator, seed=0, shuffle_buffer_size=shuffle_buffer_size
        )
        return TrainingBatches(loader, accelerator)

    def take(batches_iter, owner, n):  # [(epoch, ids)] of the next n batches
        out = []
        for _ in range(n):
            ids = next(batches_iter)["ids"].tolist()
            out.append((owner.epoch, ids))
        return out

    reference = batches()
    expected = take(iter(reference), reference, 10)
    first = batches()
    seen = take(iter(first), first, 4)
    state = first.state_dict()
    second = batches()
    second.load_state_dict(state)
    seen += take(iter(second), second, 6)
    if shuffle_buffer_size == 0:
        assert seen == expected
    else:  # datasets drops the buffered examples on resume, but repeats none within the epoch
        epoch0 = [i for epoch, ids in seen if epoch == 0 for i in ids]
        assert len(set(epoch0)) == len(epoch0) >= 12 - shuffle_buffer_size
