import argparse

from aha.training.hub import model_card

REPO_ID = "org/aha-vit-b16"  # only rendered into the card, never downloaded


def test_model_card_renders_the_template_with_the_run():
    args = argparse.Namespace(
        model_name_or_path="google/vit-base-patch16-224",
        dataset_name="ILSVRC/imagenet-1k",
        train_dir=None,
        dataset_path=None,
        hub_model_id=REPO_ID,
        output_dir="out",
    )
    card = model_card(args, steps=1234)
    assert card.data.base_model == "google/vit-base-patch16-224"
    assert card.data.library_name == "aha-explain"
    text = str(card)
    assert f'AHAExplainer.from_pretrained("{REPO_ID}")' in text
    assert "Optimisation steps: 1234" in text and "{{" not in text and "Template of" not in text
