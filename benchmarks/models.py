"""The random-init classifiers the benchmarks measure, built from configs (no download): cost, not weights, is what
the benchmarks compare."""

import torch
import transformers as T


VIT_CONFIGS = {
    # the test suite's tiny ViT: 32 px, 8 px patches, 4 layers of width 32, 5 classes (0.04 M parameters)
    "tiny-vit-32px": dict(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=5,
    ),
    # the AHA Shapes benchmark's ViT (aha.demo.classifier): 64 px, 8 px patches, 4 layers of width 128, 5 classes
    # (0.56 M parameters)
    "shapes-vit-64px": dict(
        image_size=64,
        patch_size=8,
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=256,
        num_labels=5,
    ),
    # ViT-S/16 at 224 px, 1000 classes (22.1 M parameters)
    "vit-s16-224px": dict(
        image_size=224,
        patch_size=16,
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        intermediate_size=1536,
        num_labels=1000,
    ),
    # ViT-B/16 at 224 px, 1000 classes (86.6 M parameters)
    "vit-b16-224px": dict(
        image_size=224,
        patch_size=16,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        num_labels=1000,
    ),
}

# Convolutional classifiers at their published sizes, 1000 classes: name -> (transformers class, config fields). The
# fields are those of the Hub checkpoints named in the comments (their config.json), so the cost is theirs.
CNN_CONFIGS = {
    # microsoft/resnet-50 (25.6 M parameters)
    "resnet50-224px": (
        "ResNetForImageClassification",
        dict(
            layer_type="bottleneck",
            embedding_size=64,
            hidden_sizes=[256, 512, 1024, 2048],
            depths=[3, 4, 6, 3],
            num_labels=1000,
        ),
    ),
    # facebook/convnext-tiny-224 (28.6 M parameters)
    "convnext-t-224px": (
        "ConvNextForImageClassification",
        dict(
            hidden_sizes=[96, 192, 384, 768], depths=[3, 3, 9, 3], drop_path_rate=0.0, image_size=224, num_labels=1000
        ),
    ),
    # facebook/convnextv2-tiny-1k-224 (28.6 M parameters)
    "convnextv2-t-224px": (
        "ConvNextV2ForImageClassification",
        dict(hidden_sizes=[96, 192, 384, 768], depths=[3, 3, 9, 3], image_size=224, num_labels=1000),
    ),
    # facebook/regnet-y-040 (20.6 M parameters)
    "regnet-y-040-224px": (
        "RegNetForImageClassification",
        dict(
            layer_type="y",
            embedding_size=32,
            hidden_sizes=[128, 192, 512, 1088],
            depths=[2, 6, 12, 2],
            groups_width=64,
            num_labels=1000,
        ),
    ),
    # google/efficientnet-b0 (5.3 M parameters)
    "efficientnet-b0-224px": (
        "EfficientNetForImageClassification",
        dict(
            image_size=224,
            width_coefficient=1.0,
            depth_coefficient=1.0,
            dropout_rate=0.2,
            hidden_dim=1280,
            num_labels=1000,
        ),
    ),
    # google/mobilenet_v2_1.0_224 (3.5 M parameters)
    "mobilenetv2-1.0-224px": (
        "MobileNetV2ForImageClassification",
        dict(image_size=224, depth_multiplier=1.0, num_labels=1000),
    ),
    # apple/mobilevit-small (5.6 M parameters)
    "mobilevit-s-256px": (
        "MobileViTForImageClassification",
        dict(
            image_size=256,
            hidden_sizes=[144, 192, 240],
            neck_hidden_sizes=[16, 32, 64, 96, 128, 160, 640],
            num_labels=1000,
        ),
    ),
}
CLASSIFIERS = [*VIT_CONFIGS, *CNN_CONFIGS]


def classifier_config(name: str) -> T.PreTrainedConfig:
    """The config of the named classifier (:data:`VIT_CONFIGS` or :data:`CNN_CONFIGS`), its class in
    ``architectures``."""
    if name in VIT_CONFIGS:
        return T.ViTConfig(**VIT_CONFIGS[name], architectures=["ViTForImageClassification"])
    class_name, fields = CNN_CONFIGS[name]
    config_class = getattr(T, class_name).config_class
    return config_class(**fields, architectures=[class_name])


def build_classifier(name: str, seed: int = 0) -> T.PreTrainedModel:
    """The named classifier, seeded, in eval mode."""
    torch.manual_seed(seed)
    config = classifier_config(name)
    return getattr(T, config.architectures[0])(config).eval()


def build_vit(name: str, seed: int = 0) -> T.ViTForImageClassification:
    """The named classifier of :data:`VIT_CONFIGS`, seeded, in eval mode."""
    return build_classifier(name, seed)
