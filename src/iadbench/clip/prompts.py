"""Prompt ensembles as data, and the class name that fills them (torch-free).

A prompt set is state phrases (``"flawless {}"``) and templates (``"a photo of a {}"``): each
state is filled with the class name, then each template with each filled state. The published
strings are those of METHODS §2.1 (WinCLIP's compositional ensemble, as caoyunkang/WinClip lists
its templates: without a final full stop) and §2.2 (APRIL-GAN, with full stops).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from iadbench.errors import ConfigError

WINCLIP_NORMAL_STATES = (
    "{}",
    "flawless {}",
    "perfect {}",
    "unblemished {}",
    "{} without flaw",
    "{} without defect",
    "{} without damage",
)
WINCLIP_ANOMALOUS_STATES = ("damaged {}", "{} with flaw", "{} with defect", "{} with damage")
WINCLIP_TEMPLATES = (
    "a cropped photo of the {}",
    "a cropped photo of a {}",
    "a close-up photo of a {}",
    "a close-up photo of the {}",
    "a bright photo of a {}",
    "a bright photo of the {}",
    "a dark photo of the {}",
    "a dark photo of a {}",
    "a jpeg corrupted photo of a {}",
    "a jpeg corrupted photo of the {}",
    "a blurry photo of the {}",
    "a blurry photo of a {}",
    "a photo of a {}",
    "a photo of the {}",
    "a photo of a small {}",
    "a photo of the small {}",
    "a photo of a large {}",
    "a photo of the large {}",
    "a photo of the {} for visual inspection",
    "a photo of a {} for visual inspection",
    "a photo of the {} for anomaly detection",
    "a photo of a {} for anomaly detection",
)

# anomalib 2.7.0's WinCLIP ensemble (``anomalib.models.image.winclip.prompting``), kept as it
# ships for reference parity: 21 templates with full stops, "a cropped photo of a {}" and the
# "jpeg corrupted ... a {}" variant missing and "a jpeg corrupted photo of the {}." listed twice,
# so 147 normal + 84 anomalous sentences (``winclip``: 154 + 88).
ANOMALIB_WINCLIP_TEMPLATES = (
    "a cropped photo of the {}.",
    "a close-up photo of a {}.",
    "a close-up photo of the {}.",
    "a bright photo of a {}.",
    "a bright photo of the {}.",
    "a dark photo of the {}.",
    "a dark photo of a {}.",
    "a jpeg corrupted photo of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a blurry photo of the {}.",
    "a blurry photo of a {}.",
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of a small {}.",
    "a photo of the small {}.",
    "a photo of a large {}.",
    "a photo of the large {}.",
    "a photo of the {} for visual inspection.",
    "a photo of a {} for visual inspection.",
    "a photo of the {} for anomaly detection.",
    "a photo of a {} for anomaly detection.",
)

# APRIL-GAN: WinCLIP's normal states, one more anomalous state, CLIP's ImageNet templates + 5.
APRIL_GAN_NORMAL_STATES = WINCLIP_NORMAL_STATES
APRIL_GAN_ANOMALOUS_STATES = (
    "damaged {}",
    "broken {}",
    "{} with flaw",
    "{} with defect",
    "{} with damage",
)
APRIL_GAN_TEMPLATES = (
    "a bad photo of a {}.",
    "a low resolution photo of the {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a bright photo of a {}.",
    "a dark photo of the {}.",
    "a photo of my {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a photo of one {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "a low resolution photo of a {}.",
    "a photo of a large {}.",
    "a blurry photo of a {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a photo of the small {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "a dark photo of a {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "there is a {} in the scene.",
    "there is the {} in the scene.",
    "this is a {} in the scene.",
    "this is the {} in the scene.",
    "this is one {} in the scene.",
)


@dataclass(frozen=True)
class PromptSet:
    """A compositional ensemble: every template around every state."""

    normal_states: tuple[str, ...]
    anomalous_states: tuple[str, ...]
    templates: tuple[str, ...]


PROMPT_SETS: dict[str, PromptSet] = {
    "winclip": PromptSet(WINCLIP_NORMAL_STATES, WINCLIP_ANOMALOUS_STATES, WINCLIP_TEMPLATES),
    "april_gan": PromptSet(
        APRIL_GAN_NORMAL_STATES, APRIL_GAN_ANOMALOUS_STATES, APRIL_GAN_TEMPLATES
    ),
    "winclip_anomalib": PromptSet(
        WINCLIP_NORMAL_STATES, WINCLIP_ANOMALOUS_STATES, ANOMALIB_WINCLIP_TEMPLATES
    ),
}


def fill(text: str, name: str) -> str:
    """Every ``{}`` in ``text`` -> ``name`` (other braces are left alone)."""
    return text.replace("{}", name)


def expand(states: Sequence[str], templates: Sequence[str], name: str) -> list[str]:
    """All templates around the first state, then the next: len(states) x len(templates)."""
    return [fill(template, fill(state, name)) for state in states for template in templates]


def _user_list(prompts: Mapping, state: str) -> list[str]:
    entries = prompts.get(state)
    if (
        not isinstance(entries, (list, tuple))
        or not entries
        or not all(isinstance(e, str) and e.strip() for e in entries)
    ):
        raise ConfigError(f"prompts: {state!r} must be a non-empty list of sentences or templates")
    return list(entries)


def sentences(prompts: str | Mapping, name: str) -> tuple[list[str], list[str]]:
    """(normal, anomalous) sentences for class ``name``.

    ``prompts`` is a built-in set (``winclip``, ``april_gan``, ``winclip_anomalib``) or a user
    mapping ``{normal: [...], anomalous: [...]}`` of sentences, where any ``{}`` is the class
    name.
    """
    if isinstance(prompts, str):
        if prompts not in PROMPT_SETS:
            raise ConfigError(f"unknown prompt set {prompts!r} (built in: {sorted(PROMPT_SETS)})")
        ps = PROMPT_SETS[prompts]
        return (
            expand(ps.normal_states, ps.templates, name),
            expand(ps.anomalous_states, ps.templates, name),
        )
    if not isinstance(prompts, Mapping) or set(prompts) != {"normal", "anomalous"}:
        raise ConfigError("prompts: a built-in set's name or a mapping with normal and anomalous")
    return (
        [fill(s, name) for s in _user_list(prompts, "normal")],
        [fill(s, name) for s in _user_list(prompts, "anomalous")],
    )


def class_name(
    category: str, class_names: Mapping[str, str] | None = None, literal_object: bool = False
) -> str:
    """The word(s) put in the prompts for ``category``.

    ``literal_object`` gives ``object`` (AnomalyCLIP, Crane). Otherwise ``class_names`` maps a
    category to its name: an exact key first, else glob keys (``pcb*``), which must agree when
    several match; without a match, the category with ``_`` -> space (``metal_nut`` -> ``metal
    nut``).
    """
    if literal_object:
        return "object"
    class_names = class_names or {}
    if category in class_names:
        return class_names[category]
    matches = {
        key: value for key, value in class_names.items() if fnmatch.fnmatchcase(category, key)
    }
    if len(set(matches.values())) > 1:
        raise ConfigError(
            f"class_names: category {category!r} matches {sorted(matches)} with different names"
        )
    if matches:
        return next(iter(matches.values()))
    return category.replace("_", " ")
