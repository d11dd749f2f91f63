"""Train an AHA explainer for a ViT-B/16 ImageNet classifier on ImageNet-1k, streamed from the Hub.

ImageNet-1k is gated: accept its terms at https://huggingface.co/datasets/ILSVRC/imagenet-1k and run
`hf auth login` once. One GPU:

    python examples/train_imagenet.py --output_dir aha-vit-base-patch16-224

Eight GPUs on one machine (bf16; 32 images per GPU, as in the AHA reference):

    accelerate launch --config_file examples/accelerate_multi_gpu.yaml examples/train_imagenet.py \
        --output_dir aha-vit-base-patch16-224

Any `aha train` flag may be added and overrides the defaults below (e.g. --model_name_or_path,
--max_train_steps, --push_to_hub --hub_model_id you/aha-vit-base-patch16-224). Interrupted? Re-run the
same command with --resume_from_checkpoint latest.
"""

import logging

from aha.training import build_parser, train


#: the ImageNet run's options; the command line's flags override them
IMAGENET_DEFAULTS = dict(
    model_name_or_path="google/vit-base-patch16-224",
    dataset_name="ILSVRC/imagenet-1k",
    streaming=True,
    per_device_train_batch_size=32,
    num_train_epochs=1,
    checkpointing_steps=1000,
    eval_steps=2000,
    max_eval_samples=2000,
)

if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    parser = build_parser()
    parser.set_defaults(**IMAGENET_DEFAULTS)
    data, model, optimisation, run = parser.parse_args()  # the typed arguments of aha.training.train
    explainer = train(data, model, optimisation, run)
    print(f"saved the explainer to {run.output_dir}")
