"""Prompt ensembles, user prompt lists, class names and few-shot reference draws (no torch)."""

import itertools
import subprocess
import sys

import pytest

from iadbench.clip.prompts import (
    APRIL_GAN_TEMPLATES,
    WINCLIP_ANOMALOUS_STATES,
    WINCLIP_NORMAL_STATES,
    WINCLIP_TEMPLATES,
    class_name,
    sentences,
)
from iadbench.errors import ConfigError
from iadbench.methods.winclip.shots import draw_references


def test_winclip_ensemble_is_every_template_around_every_state():
    normal, anomalous = sentences("winclip", "metal nut")
    assert (len(normal), len(anomalous)) == (154, 88)
    assert len(set(normal)) == 154 and len(set(anomalous)) == 88
    assert not set(normal) & set(anomalous)
    assert all("metal nut" in s and "{}" not in s for s in normal + anomalous)
    # Spot checks written out by hand: state filled first, then the template.
    assert "a photo of a flawless metal nut for visual inspection" in normal
    assert "a jpeg corrupted photo of a metal nut without damage" in normal
    assert "a close-up photo of the metal nut" in normal  # the bare "{}" state
    assert "a dark photo of a damaged metal nut" in anomalous
    assert "a photo of the small metal nut with defect" in anomalous
    assert not any("broken" in s for s in anomalous)


def test_winclip_lists_match_the_published_counts():
    assert (len(WINCLIP_NORMAL_STATES), len(WINCLIP_ANOMALOUS_STATES)) == (7, 4)
    assert len(WINCLIP_TEMPLATES) == len(set(WINCLIP_TEMPLATES)) == 22
    # anomalib's copy lost the "a" variant of this one; the published list has both.
    assert {"a jpeg corrupted photo of a {}", "a jpeg corrupted photo of the {}"} <= set(
        WINCLIP_TEMPLATES
    )


def test_april_gan_ensemble_adds_broken_and_the_scene_templates():
    normal, anomalous = sentences("april_gan", "screw")
    assert len(APRIL_GAN_TEMPLATES) == len(set(APRIL_GAN_TEMPLATES)) == 35
    assert (len(normal), len(anomalous)) == (7 * 35, 5 * 35)
    assert "this is one broken screw in the scene." in anomalous
    assert "a photo of my perfect screw." in normal
    assert all(s.endswith(".") for s in normal + anomalous)


def test_user_prompt_lists_fill_the_class_name_where_asked():
    normal, anomalous = sentences(
        {"normal": ["a photo of a good {}", "a clean surface"], "anomalous": ["a {} with a {}"]},
        "bottle",
    )
    assert normal == ["a photo of a good bottle", "a clean surface"]
    assert anomalous == ["a bottle with a bottle"]


@pytest.mark.parametrize(
    "prompts, message",
    [
        ("clip", "unknown prompt set 'clip'"),
        ({"normal": ["x"]}, "normal and anomalous"),
        ({"normal": ["x"], "anomalous": []}, "'anomalous' must be a non-empty list"),
        ({"normal": "x", "anomalous": ["y"]}, "'normal' must be a non-empty list"),
        ({"normal": ["x"], "anomalous": [""]}, "'anomalous' must be"),
        ({"normal": ["x"], "anomalous": ["y"], "extra": ["z"]}, "normal and anomalous"),
    ],
)
def test_bad_prompt_configs_are_refused(prompts, message):
    with pytest.raises(ConfigError, match=message):
        sentences(prompts, "bottle")


def test_class_names_default_mapping_glob_and_object():
    names = {"metal_nut": "metal nut", "pcb*": "printed circuit board", "pcb4": "pcb four"}
    assert class_name("pipe_fryum") == "pipe fryum"
    assert class_name("metal_nut", names) == "metal nut"
    assert [class_name(f"pcb{i}", names) for i in (1, 2, 3)] == ["printed circuit board"] * 3
    assert class_name("pcb4", names) == "pcb four"  # an exact key beats a glob
    assert class_name("candle", names) == "candle"
    assert class_name("metal_nut", names, literal_object=True) == "object"
    with pytest.raises(ConfigError, match=r"'pcb1' matches \['pcb\*', 'pcb\?'\]"):
        class_name("pcb1", {"pcb*": "board", "pcb?": "circuit"})
    assert class_name("pcb1", {"pcb*": "board", "pcb?": "board"}) == "board"


def test_prompts_and_shots_import_no_torch():
    code = (
        "import sys, iadbench.clip, iadbench.clip.prompts, iadbench.methods.winclip.shots; "
        "assert 'torch' not in sys.modules and 'open_clip' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- few-shot reference draws --------------------------------------------------------------


PATHS = [f"train/good/{i:03d}.png" for i in range(20)]


def test_same_seed_same_references_different_seed_different_ones():
    first = draw_references(PATHS, 4, seed=0)
    assert first == draw_references(PATHS, 4, seed=0)
    assert len(set(first)) == 4 and all(0 <= i < 20 for i in first)
    draws = {tuple(draw_references(PATHS, 4, seed=s)) for s in range(5)}
    assert len(draws) > 1
    assert draw_references(PATHS, 4, seed=1) != first


def test_references_depend_on_the_paths_not_their_order():
    shuffled = list(reversed(PATHS[::2])) + PATHS[1::2]
    for seed in range(3):
        picked = {PATHS[i] for i in draw_references(PATHS, 5, seed)}
        assert {shuffled[i] for i in draw_references(shuffled, 5, seed)} == picked


def test_all_references_when_k_is_the_number_of_images():
    assert draw_references(PATHS[:3], 3, seed=7) == [0, 1, 2]
    # every size-k subset is reachable: over many seeds, all 3 pairs of 3 images come up
    pairs = {tuple(draw_references(PATHS[:3], 2, seed=s)) for s in range(50)}
    assert pairs == set(itertools.combinations(range(3), 2))


@pytest.mark.parametrize("k", [0, 21])
def test_k_shot_outside_the_available_images_is_refused(k):
    with pytest.raises(ConfigError, match=rf"k_shot {k}: needs 1\.\.20"):
        draw_references(PATHS, k, seed=0)


def test_duplicate_candidates_are_refused():
    with pytest.raises(ConfigError, match="duplicates"):
        draw_references(PATHS + PATHS[:1], 2, seed=0)
