"""The random-init ViT classifiers the benchmarks measure, built from configs (no download): cost, not
weights, is what the benchmarks compare."""

import torch
import transformers as T


VIT_CONFIGS = {
    # the test suite's tiny ViT: 32 px, 8 px patches, 4 layers of width 32, 5 classes (0.04 M parameters)
    "tiny-vit-32px": dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                          intermediate_size=64, num_labels=5),
    # the AHA Shapes benchmark's ViT (aha.demo.classifier): 64 px, 8 px patches, 4 layers of width 128, 5 classes
    # (0.56 M parameters)
    "shapes-vit-64px": dict(image_size=64, patch_size=8, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                            intermediate_size=256, num_labels=5),
    # ViT-S/16 at 224 px, 1000 classes (22.1 M parameters)
    "vit-s16-224px": dict(image_size=224, patch_size=16, hidden_size=384, num_hidden_layers=12,
                          num_attention_heads=6, intermediate_size=1536, num_labels=1000),
    # ViT-B/16 at 224 px, 1000 classes (86.6 M parameters)
    "vit-b16-224px": dict(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12,
                          num_attention_heads=12, intermediate_size=3072, num_labels=1000),
}


def build_vit(name: str, seed: int = 0) -> T.ViTForImageClassification:
    """The named classifier of :data:`VIT_CONFIGS`, seeded, in eval mode."""
    torch.manual_seed(seed)
    return T.ViTForImageClassification(T.ViTConfig(**VIT_CONFIGS[name])).eval()
