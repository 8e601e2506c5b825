"""Encoder configs of the ``encoders:`` section: one frozen encoder per modality of a weld run.

An entry names its ``modality`` and either a network (``backbone:``, a key of ``backbones:``, or
``hf: {path: <local folder>}``) or, for audio and sensors, a fixed transform. This module holds
the defaults (the one place they live), the check that every option fits the modality, and the
identity that keys the embedding cache. It imports no torch, so the config check at DAG parse
time stays cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from iadbench.errors import ConfigError

# 1: the first layout of the per-modality embedding store.
FORMAT_VERSION = 1
MODALITIES = ("video", "audio", "sensor", "photo")
AUDIO_FEATURES = ("logmel", "stft")
# Options each modality accepts besides ``modality``; anything else is refused.
OPTIONS = {
    "video": {"backbone", "hf", "frames", "size", "batch_size"},
    "audio": {"features", "window_s", "hop_s", "n_mels", "hf", "batch_size"},
    "sensor": {"length"},
    "photo": {"backbone", "hf", "layers", "size", "batch_size"},
}


@dataclass(frozen=True)
class EncoderConfig:
    """Everything that determines the bytes of one encoder's embeddings.

    ``backbone`` is the resolved ``backbones:`` entry (not its name, so renaming an entry keeps
    the cache); ``hf`` the local transformers folder. ``stride``/``count``: video frame choice.
    ``layers``: hidden-state blocks of an ``hf`` photo model (0-based, negatives from the end).
    ``label_mask``: the dataset's label box, blanked in photos before they are resized.
    """

    modality: str
    backbone: dict | None = None
    hf: str | None = None
    stride: int | None = None
    count: int | None = None
    size: tuple[int, int] | None = None
    features: str | None = None
    window_s: float | None = None
    hop_s: float | None = None
    n_mels: int | None = None
    length: int | None = None
    layers: tuple[int, ...] | None = None
    batch_size: int | None = None
    label_mask: tuple[int, int, int, int] | None = None

    @classmethod
    def from_config(
        cls, entry: dict, backbones: dict | None = None, dataset: dict | None = None
    ) -> EncoderConfig:
        """Build from an ``encoders:`` entry, the config's ``backbones`` and the dataset entry."""
        from iadbench.data.weld import label_box

        checked = check_encoder(entry, backbones or {})
        modality = checked["modality"]
        box = label_box(dataset or {}) if modality == "photo" else None
        frames = checked.get("frames") or {}
        return cls(
            modality=modality,
            backbone=(backbones or {}).get(checked["backbone"]) if "backbone" in checked else None,
            hf=(checked.get("hf") or {}).get("path"),
            stride=frames.get("stride"),
            count=frames.get("count"),
            size=tuple(checked["size"]) if "size" in checked else None,
            features=checked.get("features"),
            window_s=checked.get("window_s"),
            hop_s=checked.get("hop_s"),
            n_mels=checked.get("n_mels"),
            length=checked.get("length"),
            layers=tuple(checked["layers"]) if "layers" in checked else None,
            batch_size=checked.get("batch_size"),
            label_mask=tuple(box) if box else None,
        )

    def identity(self) -> dict:
        """JSON-able description with the weights' content digest (registry or hf folder)."""
        ident = {k: v for k, v in asdict(self).items() if v is not None and k != "batch_size"}
        ident["format"] = FORMAT_VERSION
        if self.backbone is not None:
            from iadbench.features.extract import FeatureConfig

            feature_cfg = FeatureConfig.from_config(self.backbone, {})
            ident["backbone"] = {
                k: v
                for k, v in feature_cfg.identity().items()
                if k not in ("patch_size", "padding", "upsample", "dim", "resize", "crop", "format")
            }
        if self.hf is not None:
            from iadbench.backbones.hf import hf_identity

            ident["hf"] = hf_identity(self.hf)
        return ident

    def hash(self) -> str:
        from iadbench.features.store import config_hash

        return config_hash(self.identity())


def _defaults(entry: dict) -> dict:
    """The options an entry leaves out, per modality and source."""
    modality = entry["modality"]
    if modality == "video":
        return {"frames": {"stride": 1}, "size": [224, 224], "batch_size": 16}
    if modality == "photo":
        extra = {"layers": [-1]} if "hf" in entry else {}
        return {"size": [224, 224], "batch_size": 16, **extra}
    if modality == "sensor":
        return {"length": 256}
    if "hf" in entry:
        return {"batch_size": 4}
    features = entry.get("features", "logmel")
    extra = {"n_mels": 64} if features == "logmel" else {}
    return {"features": "logmel", "window_s": 0.085, "hop_s": 0.043, **extra}


def check_encoder(entry: dict, backbones: dict, name: str = "") -> dict:
    """``entry`` with every default written out (what a rule should pass as params, so a
    changed default reruns like a changed value), or a ConfigError naming what does not fit."""
    where = f"encoder {name!r}" if name else "encoder"
    modality = entry.get("modality")
    if modality not in MODALITIES:
        raise ConfigError(f"{where}: modality {modality!r} is not one of {MODALITIES}")
    if unknown := sorted(set(entry) - OPTIONS[modality] - {"modality"}):
        raise ConfigError(
            f"{where}: {modality} encoders take no {unknown} "
            f"(options: {', '.join(sorted(OPTIONS[modality]))})"
        )
    sources = [key for key in ("backbone", "hf") if key in entry]
    if modality in ("video", "photo") and len(sources) != 1:
        raise ConfigError(f"{where}: a {modality} encoder needs exactly one of backbone: or hf:")
    if "backbone" in entry and entry["backbone"] not in backbones:
        raise ConfigError(
            f"{where}: backbone {entry['backbone']!r} is not defined under backbones: "
            f"(defined: {', '.join(backbones) or 'none'})"
        )
    if "hf" in entry and not (entry["hf"] or {}).get("path"):
        raise ConfigError(f"{where}: hf: needs a path: (a local save_pretrained folder)")
    if modality == "audio" and "hf" in entry and set(entry) & {"features", "window_s", "hop_s"}:
        raise ConfigError(f"{where}: an hf audio model makes its own spectrogram; drop features:")
    filled = {**_defaults(entry), **entry}
    if modality == "audio" and "hf" not in entry:
        if filled["features"] not in AUDIO_FEATURES:
            raise ConfigError(f"{where}: features {filled['features']!r} not in {AUDIO_FEATURES}")
        if filled["features"] == "stft" and "n_mels" in entry:
            raise ConfigError(f"{where}: n_mels is for features: logmel only")
        if not 0 < filled["hop_s"] <= filled["window_s"]:
            raise ConfigError(f"{where}: hop_s must be in (0, window_s]")
    frames = filled.get("frames") or {}
    if modality == "video" and len(frames) != 1:
        raise ConfigError(f"{where}: frames: takes exactly one of stride: or count:")
    return filled
