"""Batches for the training loop: shuffled, split across processes, endless over epochs, resumable.

Two kinds of dataset, one interface:

- map-style ``Dataset``: a shuffled ``DataLoader`` prepared by ``accelerate`` (a seeded sampler, so epoch
  ``e`` has the same order on every process and in every run; each process gets its own equal share).
  The position is (epoch, batches consumed); resuming skips the consumed batches of the epoch with
  ``accelerator.skip_first_batches``.
- streaming ``IterableDataset``: shuffled by shard order plus a buffer, split across processes with
  ``datasets.distributed.split_dataset_by_node`` (every example goes to exactly one process) and read by a
  plain per-process ``DataLoader`` in the main thread. The position is each process's
  ``IterableDataset.state_dict()``. Examples that sit in the shuffle buffer when a checkpoint is written
  are not restored by ``datasets``: with ``shuffle_buffer_size=0`` (shard order only) resuming is exact.
"""

from __future__ import annotations

import datasets
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from datasets.distributed import split_dataset_by_node
from torch.utils.data import DataLoader


def limit_examples(dataset, max_examples: int | None):
    """The first ``max_examples`` examples (all when None)."""
    if max_examples is None:
        return dataset
    if isinstance(dataset, datasets.IterableDataset):
        return dataset.take(max_examples)
    return dataset.select(range(min(max_examples, len(dataset))))


def train_dataloader(
    dataset,
    collate_fn,
    batch_size: int,
    accelerator: Accelerator,
    seed: int,
    shuffle_buffer_size: int = 10_000,
    num_workers: int = 0,
) -> DataLoader:
    """A per-process training ``DataLoader`` of full batches of ``batch_size`` (the last partial batch of an
    epoch is dropped). Map-style datasets come back prepared by ``accelerator`` (batches on its device);
    streams come back split for this process, batches on the CPU.

    The loaders own a generator: by default every new ``DataLoader`` iterator draws a seed from torch's
    global RNG, and library code draws from no global RNG."""
    full_batches = dict(batch_size=batch_size, drop_last=True, collate_fn=collate_fn)
    generator = torch.Generator().manual_seed(seed)
    if not isinstance(dataset, datasets.IterableDataset):
        loader = DataLoader(dataset, shuffle=True, num_workers=num_workers, generator=generator, **full_batches)
        return accelerator.prepare(loader)
    if num_workers:
        raise ValueError(
            "streaming datasets are read in the main process (--dataloader_num_workers 0) so that the stream "
            "position can be checkpointed; decoding is small next to the classifier's perturbed passes"
        )
    if shuffle_buffer_size:
        dataset = dataset.shuffle(seed=seed, buffer_size=shuffle_buffer_size)
    dataset = split_dataset_by_node(dataset, rank=accelerator.process_index, world_size=accelerator.num_processes)
    return DataLoader(dataset, generator=generator, **full_batches)


def eval_dataloader(
    dataset, collate_fn, batch_size: int, accelerator: Accelerator, strategy: str = "auto"
) -> DataLoader:
    """This process's share of a held-out split, in order, every example once (batches on the CPU).

    ``strategy`` splits a stream (``split_dataset_by_node``'s): ``"examples"`` has every process read the whole
    stream and keep every ``num_processes``-th example, so a column added before the split by ``map(...,
    with_indices=True)`` is the example's position in the split; ``"auto"`` may hand out whole shards instead."""
    split = {"strategy": strategy} if isinstance(dataset, datasets.IterableDataset) else {}
    share = split_dataset_by_node(
        dataset, rank=accelerator.process_index, world_size=accelerator.num_processes, **split
    )
    return DataLoader(share, batch_size=batch_size, collate_fn=collate_fn)


class TrainingBatches:
    """Endless training micro-batches on the accelerator's device, epoch after epoch, with a position that
    ``state_dict`` / ``load_state_dict`` save and restore (as JSON, in ``aha.training.checkpointing``;
    every process must call ``state_dict`` together).

    Attributes:
        epoch: passes completed over the training split.
        batches_in_epoch: micro-batches this process consumed in the current epoch.
    """

    def __init__(self, dataloader: DataLoader, accelerator: Accelerator):
        self.dataloader = dataloader
        self.accelerator = accelerator
        self.streaming = isinstance(dataloader.dataset, datasets.IterableDataset)
        self.epoch = 0
        self.batches_in_epoch = 0

    def __iter__(self):
        while True:
            for batch in self._epoch_loader():
                self.batches_in_epoch += 1
                yield {key: value.to(self.accelerator.device) for key, value in batch.items()}
            if self.batches_in_epoch == 0:
                raise ValueError(
                    "the training split yields no full batch: it needs at least per_device_train_batch_size x "
                    "num_processes examples"
                )
            self.epoch += 1
            self.batches_in_epoch = 0

    def _epoch_loader(self):
        if self.streaming:
            self.dataloader.dataset.set_epoch(self.epoch)
            return self.dataloader
        self.dataloader.set_epoch(self.epoch)
        if not self.batches_in_epoch:
            return self.dataloader
        skipping = self.accelerator.skip_first_batches(self.dataloader, self.batches_in_epoch)
        skipping.set_epoch(self.epoch)
        return skipping

    def state_dict(self) -> dict:
        """The position; for streams, the state of every process's share (a collective call)."""
        stream_state = self.dataloader.dataset.state_dict() if self.streaming else None
        return {
            "epoch": self.epoch,
            "batches_in_epoch": self.batches_in_epoch,
            "stream_states": gather_object([stream_state]),
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state["epoch"]
        self.batches_in_epoch = state["batches_in_epoch"]
        if not self.streaming:
            return
        stream_states = state["stream_states"]
        if len(stream_states) != self.accelerator.num_processes:
            raise ValueError(
                f"this checkpoint holds the stream positions of {len(stream_states)} processes; resume a streaming "
                f"run with the same number of processes (got {self.accelerator.num_processes})"
            )
        self.dataloader.dataset.set_epoch(self.epoch)
        self.dataloader.dataset.load_state_dict(stream_states[self.accelerator.process_index])
