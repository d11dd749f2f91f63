"""Saving and loading explainers: self-contained, or without the frozen classifier like a PEFT adapter, always
checked against the fingerprints recorded at saving (the classifier's weights, and everything else that decides a
map: the explainer's own weights, both configs, the image processor's settings); and pushing them to the Hub.

:class:`ExplainerSavingMixin` gives :class:`~aha.AHAExplainer` its ``save_pretrained``, ``from_pretrained`` and
``push_to_hub`` (as transformers' ``PushToHubMixin`` or ``PeftAdapterMixin`` do for their models).
"""

from __future__ import annotations

import os
import re

import torch
import transformers
from transformers import AutoImageProcessor, PreTrainedConfig, PreTrainedModel
from transformers.utils import CONFIG_NAME, IMAGE_PROCESSOR_NAME, logging

from ..modeling.configuration_aha import AHAConfig, _check_fingerprints
from ..validation import check_bool
from .atomic_writer import staged_folder
from .fingerprints import (
    FINGERPRINTED_PARTS,
    changed_parts,
    saved_fingerprints,
    short_fingerprint,
    weights_fingerprint,
)
from .hub_upload import push_explainer
from .safe_readers import read_json
from .strict_loading import (
    check_finite_weights,
    check_local_path,
    load_classifier,
    naming_damaged_files,
    read_model_json,
    weights_files,
)


logger = logging.get_logger(__name__)

# state-dict prefix of the frozen classifier inside the explainer: left out of decoder-only saves
CLASSIFIER_PREFIX = "classifier."
# from_pretrained arguments that also apply to loading a decoder-only save's classifier from where it was recorded
_CLASSIFIER_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "proxies", "token")
# what from_pretrained says about a save that records no fingerprints
_UNFINGERPRINTED = (
    "it was saved by an aha-explain from before they were recorded, or the field was removed or nulled. Only if you "
    "trust its files, load it with AHAExplainer.from_pretrained(path, allow_unfingerprinted=True) and save it again "
    "to record them"
)


def _unfingerprinted(message: str, allow: bool) -> None:
    """A save without a fingerprint it should have: raise, or with ``allow_unfingerprinted`` warn and go on."""
    if not allow:
        raise ValueError(message + _UNFINGERPRINTED)
    logger.warning(message + "loaded unchecked (allow_unfingerprinted=True); save it again to record the fingerprints")


def own_weights(state_dict: dict) -> dict:
    """The weights of ``state_dict`` (an explainer's) without the frozen classifier's: the decoder's and the
    feature backbone's, what a decoder-only save and a training checkpoint store."""
    return {key: value for key, value in state_dict.items() if not key.startswith(CLASSIFIER_PREFIX)}


def classifier_class(config) -> type[PreTrainedModel]:
    """The transformers class named by ``config.architectures[0]`` (never remote code)."""
    name = (config.architectures or [None])[0]
    cls = getattr(transformers, name, None) if name else None
    if cls is None or "ForImageClassification" not in name:
        raise ValueError(
            f"classifier_config.architectures must name a transformers image classification class "
            f"(e.g. ViTForImageClassification), got {config.architectures}"
        )
    return cls


def _describe_source(config: AHAConfig) -> str:
    """``name_or_path@revision`` of the recorded classifier, for messages."""
    source = config.classifier_name_or_path or "<no classifier_name_or_path recorded>"
    return f"{source}@{config.classifier_revision}" if config.classifier_revision else source


def _check_explainer_folder(name_or_path, **hub_kwargs) -> tuple[dict, str]:
    """The stored config of the explainer saved at ``name_or_path``, as a dict, and the path of its config.json.
    Raise a FileNotFoundError or ValueError saying what ``name_or_path`` holds when it is not a saved explainer (a
    missing local folder, no config.json, or the config of another model type), or when config.json asks for
    custom code (``auto_map``)."""
    check_local_path(name_or_path, "AHAExplainer.from_pretrained")
    if os.path.isdir(name_or_path) and not os.path.isfile(os.path.join(name_or_path, CONFIG_NAME)):
        raise FileNotFoundError(
            f"{name_or_path} holds no config.json: it is not a saved explainer (AHAExplainer.save_pretrained writes one)"
        )
    stored, path = read_model_json(name_or_path, CONFIG_NAME, required=True, **hub_kwargs)
    model_type = stored.get("model_type")
    if model_type != AHAConfig.model_type:
        raise ValueError(
            f"{name_or_path} holds a model of type {model_type!r}, not an AHA explainer (model_type "
            f"{AHAConfig.model_type!r}); to explain a classifier, wrap it: AHAExplainer.from_classifier(classifier)"
        )
    return stored, path


def _load_recorded_classifier(config: AHAConfig, **hub_kwargs) -> PreTrainedModel:
    """The classifier a decoder-only save was made for: ``config.classifier_name_or_path`` (Hub id or
    local path) at ``config.classifier_revision``, as the exact class in ``classifier_config.architectures``
    (never remote code), from safetensors only, in its checkpoint dtype."""
    if not config.classifier_name_or_path:
        raise ValueError(
            "this explainer was saved without its classifier (include_classifier=False) and records no "
            "classifier_name_or_path: pass the classifier, AHAExplainer.from_pretrained(path, classifier=classifier)"
        )
    try:
        return load_classifier(
            classifier_class(config.classifier_config),
            config.classifier_name_or_path,
            "the classifier this explainer was saved for,",
            revision=config.classifier_revision,
            **hub_kwargs,
        )
    except OSError as error:
        raise OSError(
            f"could not load the classifier {_describe_source(config)} that this decoder-only explainer was saved "
            f"for ({error}). Pass it explicitly: AHAExplainer.from_pretrained(path, classifier=classifier)"
        ) from error


def _saved_image_processor(name_or_path, **hub_kwargs) -> tuple[object, dict, str] | None:
    """``(processor, settings, path)``: the image processor saved next to an explainer, the content of its
    ``preprocessor_config.json`` (refused when it sets ``auto_map``) and that file's path; None if there is none."""
    found = read_model_json(name_or_path, IMAGE_PROCESSOR_NAME, **hub_kwargs)
    if found is None:
        return None
    return AutoImageProcessor.from_pretrained(name_or_path, **hub_kwargs), *found


class ExplainerSavingMixin:
    """``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` of an explainer (mixed into a ``PreTrainedModel``
    with a frozen ``self.classifier``, its ``config`` an :class:`~aha.AHAConfig`, and ``self.image_processor``)."""

    def ignore_missing_classifier_weights(self) -> None:
        """Let loading a decoder-only save leave the classifier's weights out: they are attached after loading."""
        self._keys_to_ignore_on_load_missing.add("^" + re.escape(CLASSIFIER_PREFIX))

    def save_pretrained(
        self, save_directory, *args, include_classifier: bool = True, state_dict: dict | None = None, **kwargs
    ):
        """[`~PreTrainedModel.save_pretrained`], self-contained by default or, like a PEFT adapter, without the classifier.

        Either way the config records the fingerprint of the classifier's weights (`classifier_fingerprint`, see
        [`~aha.persistence.fingerprints.weights_fingerprint`]) next to where it comes from (`classifier_name_or_path`,
        `classifier_revision`, set in [`from_classifier`] or on `self.config`), and the classifier's image
        processor, when the explainer knows it (`self.image_processor`), is saved next to the weights. Then
        config.json is written again with `fingerprints` (see [`~aha.persistence.fingerprints.saved_fingerprints`]): the digests
        of the explainer's own weights, of config.json as written and of preprocessor_config.json.

        Args:
            include_classifier (`bool`, defaults to `True`):
                `False` leaves the frozen classifier's weights (every `classifier.*` key) out of the weights file:
                the decoder (and the separate feature backbone, if any, which is kept) is saved alone, and
                [`from_pretrained`] loads the classifier from `classifier_name_or_path`, or takes it as `classifier=`, and
                checks its fingerprint.
            state_dict (`dict`, *optional*): the weights to save instead of `self.state_dict()`.

        Raises:
            NotADirectoryError: `save_directory` is a file (transformers would only log an error and return).
            ValueError: `include_classifier` is not a bool; `push_to_hub=True` (it would upload before the
                fingerprints are written: use [`push_to_hub`]).
        """
        check_bool("include_classifier", include_classifier)
        if kwargs.get("push_to_hub"):
            raise ValueError(
                "save_pretrained(push_to_hub=True) would upload config.json before its fingerprints are recorded: "
                "use explainer.push_to_hub(repo_id), which saves and uploads in one commit"
            )
        if os.path.isfile(save_directory):
            raise NotADirectoryError(
                f"save_pretrained: {save_directory} is a file; pass a folder to save the explainer in"
            )
        main_process = kwargs.get("is_main_process", True)
        state_dict = self.state_dict() if state_dict is None else state_dict
        stale = os.path.join(save_directory, IMAGE_PROCESSOR_NAME)
        if main_process and self.image_processor is None and (os.path.isfile(stale) or os.path.islink(stale)):
            os.remove(stale)  # an earlier save's processor: it would be loaded as this explainer's
        self.config.classifier_fingerprint = weights_fingerprint(self.classifier)
        self.config.includes_classifier = include_classifier
        try:
            with staged_folder(save_directory) as staging:  # atomic per file; links at the file names are replaced
                self._write_save(staging, state_dict, include_classifier, main_process, *args, **kwargs)
        finally:
            self.config.includes_classifier = True  # in memory the explainer always holds its classifier

    def _write_save(
        self, folder: str, state_dict: dict, include_classifier: bool, main_process: bool, *args, **kwargs
    ):
        """Write a save into ``folder``: the image processor first, then the weights and config.json (transformers'
        ``save_pretrained``), then config.json again with the ``fingerprints`` of the weights and of both files as
        written."""
        weights = own_weights(state_dict)
        processor_settings = None
        if main_process and self.image_processor is not None:
            self.image_processor.save_pretrained(folder)
            processor_settings = read_json(os.path.join(folder, IMAGE_PROCESSOR_NAME))
        super().save_pretrained(folder, *args, state_dict=state_dict if include_classifier else weights, **kwargs)
        if main_process:
            written = read_json(os.path.join(folder, CONFIG_NAME))
            self.config.fingerprints = saved_fingerprints(weights, written, processor_settings)
            self.config.save_pretrained(folder)

    def push_to_hub(self, repo_id: str, *, include_classifier: bool = True, eval_results=None, **kwargs):
        """Upload the explainer, its image processor and an aha model card to the Hub in one commit.

        Args:
            include_classifier (`bool`, defaults to `True`): `False` uploads a decoder-only save (see
                [`save_pretrained`]); the card says which and how to load it.
            eval_results (`list[huggingface_hub.EvalResult]`, *optional*): measured faithfulness for the card,
                e.g. [`aha.persistence.model_cards.faithfulness_results`] of an evaluation.
            **kwargs: `license`, `commit_message`, `private`, `token`, `revision`, `create_pr` (see
                [`aha.persistence.hub_upload.push_explainer`]).
        """
        check_bool("include_classifier", include_classifier)  # before the repository is created
        return push_explainer(
            self, repo_id, include_classifier=include_classifier, eval_results=eval_results, **kwargs
        )

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path,
        *model_args,
        classifier: PreTrainedModel | None = None,
        allow_unfingerprinted: bool = False,
        **kwargs,
    ):
        """[`~PreTrainedModel.from_pretrained`] from safetensors only, for self-contained and decoder-only saves.

        A decoder-only save (`save_pretrained(include_classifier=False)`) gets its classifier from `classifier`, or
        else from the recorded `classifier_name_or_path` / `classifier_revision` (local paths work offline;
        `cache_dir`, `force_download`, `local_files_only`, `proxies` and `token` apply to that load too).

        Args:
            classifier (`PreTrainedModel`, *optional*):
                The classifier to explain. Its weights must have the recorded fingerprint (with a self-contained
                save too, where this only checks them); they are copied into the explainer.

            allow_unfingerprinted (`bool`, defaults to `False`):
                Load a save that records no fingerprints (one made before they were recorded), with a warning, so
                that it can be saved again. Recorded fingerprints are always checked.

        The classifier's weights are always checked against the recorded fingerprint (one hash of the classifier's
        weights per load): the stored ones of a self-contained save, the recorded or passed ones otherwise.
        Everything else that decides a map is checked against `config.fingerprints`: the explainer's own weights,
        config.json's `classifier_config` and other fields, and preprocessor_config.json (see
        [`~aha.persistence.fingerprints.saved_fingerprints`]). Weights are checked in their stored dtype; a `dtype` argument
        casts the explainer after the check. Fingerprints are computed from the files, so config fields passed as
        arguments (e.g. `refine_lr=0.1`) apply without failing the check.

        Raises:
            FileNotFoundError: a local path that does not exist, or a folder without `config.json`.
            ValueError: the folder holds another kind of model; config.json or preprocessor_config.json sets
                `auto_map` (custom code, never run); a weights file is damaged or truncated, or holds NaN or
                infinite values (naming the file); the checkpoint lacks some of the explainer's own weights (never
                randomly initialised); the classifier's weights are not the ones the explainer was saved with; a
                file no longer matches its recorded fingerprint (naming the file and what differs), or the save
                records no fingerprint (see `allow_unfingerprinted`).
        """
        check_bool("allow_unfingerprinted", allow_unfingerprinted)
        name = pretrained_model_name_or_path
        output_loading_info = kwargs.pop("output_loading_info", False)
        kwargs.setdefault("use_safetensors", True)
        dtype = kwargs.pop("dtype", None) or kwargs.pop("torch_dtype", None)
        hub_kwargs = {key: kwargs[key] for key in _CLASSIFIER_HUB_KWARGS if key in kwargs}
        if dtype is not None and isinstance(kwargs.get("config"), PreTrainedConfig):
            # AutoModel folds a requested dtype into the config it passes: load the stored one, cast after the check
            kwargs["config"].dtype = cls._stored_dtype(name, revision=kwargs.get("revision"), **hub_kwargs)
        file_kwargs = {k: kwargs[k] for k in (*_CLASSIFIER_HUB_KWARGS, "revision", "subfolder") if k in kwargs}
        stored, config_path = _check_explainer_folder(name, **file_kwargs)
        model, loading_info = cls._load_checked_weights(name, model_args, kwargs, hub_kwargs)
        processor = _saved_image_processor(name, **file_kwargs)
        model._check_saved_fingerprints(stored, config_path, processor, allow_unfingerprinted)
        model._take_classifier(classifier, config_path, allow_unfingerprinted, hub_kwargs)
        if dtype is not None and dtype != "auto":
            model.to(dtype=getattr(torch, dtype) if isinstance(dtype, str) else dtype)
        model.image_processor = None if processor is None else processor[0]
        return (model, loading_info) if output_loading_info else model

    @classmethod
    def _stored_dtype(cls, name_or_path, **hub_kwargs) -> torch.dtype | None:
        """The dtype recorded in the config.json of the save at ``name_or_path`` (``hub_kwargs``: ``revision``,
        ``token``, ...)."""
        stored = cls.config_class.get_config_dict(name_or_path, **hub_kwargs)[0].get("dtype")
        return getattr(torch, stored) if isinstance(stored, str) else stored

    @classmethod
    def _load_checked_weights(cls, name_or_path, model_args: tuple, kwargs: dict, hub_kwargs: dict):
        """``(model, loading_info)`` of transformers' ``from_pretrained`` (a damaged weights file is named), after
        refusing a checkpoint that lacks some of the explainer's weights and one with NaN or infinite values; the
        frozen models are frozen again (loading replaces the parameters that ``__init__`` froze)."""
        with naming_damaged_files(name_or_path, **hub_kwargs, revision=kwargs.get("revision")):
            model, loading_info = super().from_pretrained(
                name_or_path, *model_args, output_loading_info=True, **kwargs
            )
        if loading_info["missing_keys"]:
            missing = sorted(loading_info["missing_keys"])
            raise ValueError(f"{name_or_path} lacks {len(missing)} weights of the explainer: {missing[:5]}")
        model._freeze_frozen_models()
        # a decoder-only save's classifier is checked where it is loaded (load_classifier) or was passed
        check_finite_weights(model, name_or_path, skip="" if model.config.includes_classifier else CLASSIFIER_PREFIX)
        return model, loading_info

    def _take_classifier(self, classifier, config_path: str, allow_unfingerprinted: bool, hub_kwargs: dict) -> None:
        """Copy ``classifier`` in after checking its fingerprint (for a decoder-only save without one: the classifier
        recorded in the config, loaded with ``hub_kwargs``); without one, check the stored classifier's fingerprint."""
        if classifier is None and not self.config.includes_classifier:
            classifier = _load_recorded_classifier(self.config, **hub_kwargs)
        if classifier is not None:
            self._attach_classifier(classifier)
        else:
            self._check_stored_classifier(config_path, allow_unfingerprinted)

    def _check_saved_fingerprints(
        self, stored: dict, config_path: str, processor, allow_unfingerprinted: bool
    ) -> None:
        """Check the loaded weights, the stored config (``stored``, read from ``config_path``) and the saved image
        processor (``(processor, settings, path)`` or None) against the ``fingerprints`` recorded in config.json.

        Raises:
            ValueError: a part differs, naming its file and what the part covers; or no fingerprints are recorded
                (unless ``allow_unfingerprinted``, which only warns).
        """
        recorded = stored.get("fingerprints")
        if recorded is None:
            _unfingerprinted(
                f"{config_path} records no fingerprints of the explainer's weights, config and image processor: ",
                allow_unfingerprinted,
            )
            return
        _check_fingerprints(recorded)
        current = saved_fingerprints(
            own_weights(self.state_dict()), stored, None if processor is None else processor[1]
        )
        changed = changed_parts(recorded, current)
        if changed:
            files = {
                "weights": weights_files(self.name_or_path),
                "classifier_config": config_path,
                "explainer_config": config_path,
                "image_processor": processor[2]
                if processor
                else os.path.join(str(self.name_or_path), IMAGE_PROCESSOR_NAME),
            }
            differences = "; ".join(
                f"{files[part]} [{FINGERPRINTED_PARTS[part]}]: fingerprint "
                + (short_fingerprint(current[part]) if current[part] else "none, the file is missing")
                + ", saved "
                + (short_fingerprint(recorded[part]) if recorded[part] else "none, the save had no such file")
                for part in changed
            )
            raise ValueError(
                f"{self.name_or_path} does not hold what was saved: {differences}. The file was edited, damaged, "
                "replaced or added after saving, so the maps would not be the explainer's; restore the saved files or "
                "save the explainer again"
            )

    def _check_stored_classifier(self, config_path: str, allow_unfingerprinted: bool = False) -> None:
        """Check the classifier stored in a self-contained save against the fingerprint its config records.

        Raises:
            ValueError: the fingerprints differ (the weights file or config.json was changed after saving), or none
                is recorded (unless ``allow_unfingerprinted``, which only warns).
        """
        expected = self.config.classifier_fingerprint
        if expected is None:
            _unfingerprinted(
                f"{config_path} records no classifier_fingerprint, so its classifier cannot be checked: ",
                allow_unfingerprinted,
            )
            return
        got = weights_fingerprint(self.classifier)
        if got != expected:
            raise ValueError(
                f"the classifier stored in {self.name_or_path} has the weights fingerprint {short_fingerprint(got)}, "
                f"but its config.json records {short_fingerprint(expected)}: the weights file or config.json was "
                "changed after saving, so this is not the classifier the explainer was trained for"
            )

    def _attach_classifier(self, classifier: PreTrainedModel) -> None:
        """Copy ``classifier``'s weights into the frozen classifier after checking them against the recorded fingerprint.

        Raises:
            ValueError: the fingerprints differ (a checkpoint for a different classifier), naming both
                fingerprints and where the expected classifier comes from.
        """
        expected = self.config.classifier_fingerprint
        got = weights_fingerprint(classifier)
        if got != expected:
            raise ValueError(
                f"this explainer ({self.name_or_path or 'in memory'}) was saved for a different classifier: the "
                f"classifier's weights fingerprint is {short_fingerprint(got)} ({classifier.name_or_path or type(classifier).__name__}), "
                f"expected {short_fingerprint(expected)} (recorded as {_describe_source(self.config)})"
            )
        self.classifier.load_state_dict(classifier.state_dict())
        self.config.includes_classifier = True
