"""Both towers of a registered open_clip model, with the visual outputs the CLIP methods read.

Weights resolve as for feature extraction (:func:`iadbench.backbones.weights.resolve_weights`,
offline): ``random`` (seeded), ``pretrained`` or a published tag from a local cache, or a local
file. A file is an open_clip state dict holding both towers, or OpenAI's TorchScript archive
(``~/.cache/clip/ViT-L-14-336px.pt``), read as a state dict and loaded into the registry's
architecture. open_clip's ``load_openai_model`` is not used for archives: it guesses the
architecture from tensor shapes (heads = width / 64, which silently builds the wrong attention for
models of another head width, such as ``clip_tiny``) and downloads when given a model name.

Text goes through open_clip's bundled BPE tokenizer; a model whose config names a Hugging Face
tokenizer is refused, since that tokenizer would come from the hub.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from iadbench.backbones.loader import Preprocessing, build_clip_model
from iadbench.backbones.registry import resolve_layers, spec_for
from iadbench.backbones.weights import ResolvedWeights, resolve_weights
from iadbench.clip.token_paths import TOKEN_PATHS
from iadbench.errors import ConfigError

# image resize filters before a CLIP (backbone ``resample``; config/schema.yaml lists the same)
RESAMPLES = ("bilinear", "bicubic")


@dataclass(frozen=True)
class VisualOutputs:
    """One batch's frozen visual outputs."""

    cls: torch.Tensor  # (B, D): ln_post(CLS) @ proj after the last block, the image embedding
    patches: tuple[torch.Tensor, ...]  # per block in ``blocks``: (B, h, w, D), CLS removed
    blocks: tuple[int, ...]  # resolved 0-based block indices, in depth order


@dataclass(frozen=True)
class FrozenStream:
    """What a trained head starts from: the frozen residual stream at some blocks, which is
    the same every epoch (no augmentation), so it can be computed once and cached."""

    tokens: torch.Tensor  # (B, T, 1 + h*w, width): the stream after each block, CLS first
    cls: torch.Tensor | None  # (B, D): the image embedding, when the pass ran to the end


def interpolate_positional_embedding(
    pos: torch.Tensor, grid_from: tuple[int, int], grid_to: tuple[int, int], mode: str = "bilinear"
) -> torch.Tensor:
    """(1 + h*w, D) -> (1 + h'*w', D): the patch grid resampled, the CLS row kept as it is.

    Returns ``pos`` itself at the same grid, so the native size is exactly the published model.
    ``mode`` ``bicubic_antialias`` is open_clip's ``resize_pos_embed`` (VAND-APRIL-GAN's 518 px
    runs): torch's antialiased bicubic, whose kernel (a = -0.5) differs from plain bicubic's
    (a = -0.75) even when upsampling.
    """
    h, w = grid_from
    if pos.shape[0] != 1 + h * w:
        raise ValueError(f"{pos.shape[0]} positions do not make CLS + a {h}x{w} grid")
    if tuple(grid_from) == tuple(grid_to):
        return pos
    grid = pos[1:].reshape(h, w, -1).permute(2, 0, 1)[None].float()
    antialias = mode == "bicubic_antialias"
    grid = F.interpolate(
        grid,
        size=tuple(grid_to),
        mode="bicubic" if antialias else mode,
        align_corners=False,
        antialias=antialias,
    )
    grid = grid[0].permute(1, 2, 0).reshape(-1, pos.shape[1]).to(pos.dtype)
    return torch.cat([pos[:1], grid])


def set_input_size(
    visual: torch.nn.Module, size: int | Sequence[int], mode: str = "bilinear"
) -> tuple[int, int]:
    """Run an open_clip ViT at ``size`` px: interpolated positions, updated grid (in place)."""
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    ph, pw = visual.patch_size
    if height % ph or width % pw:
        raise ConfigError(f"input size {height}x{width} is not a multiple of the patch {ph}x{pw}")
    grid = (height // ph, width // pw)
    pos = interpolate_positional_embedding(
        visual.positional_embedding.data, tuple(visual.grid_size), grid, mode
    )
    visual.positional_embedding = torch.nn.Parameter(pos, requires_grad=False)
    visual.grid_size = grid
    visual.image_size = (height, width)
    return height, width


def bundled_tokenizer(library_name: str):
    """open_clip's own BPE tokenizer (vocabulary shipped in the package) for this architecture."""
    import open_clip
    from open_clip.tokenizer import SimpleTokenizer

    text_cfg = (open_clip.get_model_config(library_name) or {}).get("text_cfg", {})
    if text_cfg.get("hf_tokenizer_name"):
        raise ConfigError(
            f"open_clip {library_name} tokenizes with the Hugging Face tokenizer "
            f"{text_cfg['hf_tokenizer_name']!r}, which iadbench cannot fetch offline"
        )
    return SimpleTokenizer(
        context_length=text_cfg.get("context_length", 77), **text_cfg.get("tokenizer_kwargs", {})
    )


def _check_supported(name: str, visual: torch.nn.Module) -> None:
    """The window pass and the taps assume a plain CLS-pooled ViT (every CLIP the methods use)."""
    plain = (
        hasattr(visual, "conv1")
        and getattr(visual, "attn_pool", None) is None
        and getattr(visual, "pool_type", None) == "tok"
        and visual.positional_embedding.ndim == 2
    )
    if not plain:
        raise ConfigError(f"backbone {name!r}: only CLS-pooled open_clip ViTs are supported")


@dataclass
class ClipEncoder:
    """A frozen open_clip model, its tokenizer and what its outputs are labelled with."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    preprocessing: Preprocessing
    weights: ResolvedWeights
    # PIL filter that resizes images to the dataset geometry before this encoder (backbone
    # ``resample``); carried here, beside the mean/std, so every image path that feeds the
    # encoder (cached views, windows, few-shot references, training) resizes alike.
    resample: str = "bilinear"

    @property
    def visual(self) -> torch.nn.Module:
        return self.model.visual

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.visual.grid_size)

    @property
    def device(self) -> torch.device:
        return self.visual.conv1.weight.device

    def resolve_blocks(self, blocks: Sequence[int] | str | None) -> tuple[int, ...]:
        """Config block indices (0-based, negative from the end, ``lastN``) -> sorted indices."""
        return resolve_layers(self.name, blocks)

    def _embedded(self, batch: torch.Tensor) -> torch.Tensor:
        """[CLS] + patch tokens with positions added: (B, 1 + h*w, width), before ln_pre."""
        v = self.visual
        batch = batch.to(self.device, v.conv1.weight.dtype)
        size = self.preprocessing.input_size
        if tuple(batch.shape[-2:]) != size:
            batch = F.interpolate(
                batch, size=size, mode="bilinear", align_corners=False, antialias=True
            )
        x = v.conv1(batch).flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        return torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)

    def run_block(self, block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """One residual block on (B, N, width) tokens, whatever layout the transformer keeps."""
        if self.visual.transformer.batch_first:
            return block(x)
        return block(x.transpose(0, 1)).transpose(0, 1)

    def stream_start(self, batch: torch.Tensor) -> torch.Tensor:
        """The residual stream entering block 0: ``ln_pre`` of [CLS] + patches + positions."""
        return self.visual.ln_pre(self._embedded(batch))

    @torch.no_grad()
    def frozen_stream(
        self, batch: torch.Tensor, blocks: Sequence[int], final: bool = True
    ) -> FrozenStream:
        """The residual stream after each of ``blocks`` (resolved, 0-based) and, with
        ``final``, the image embedding (the pass then runs every block, else stops early)."""
        resblocks = self.visual.transformer.resblocks
        stop = len(resblocks) if final else max(blocks) + 1
        x, kept = self.stream_start(batch), []
        for i in range(stop):
            x = self.run_block(resblocks[i], x)
            if i in blocks:
                kept.append(x)
        return FrozenStream(torch.stack(kept, dim=1), self._project(x[:, 0]) if final else None)

    def _project(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.visual.ln_post(tokens) @ self.visual.proj

    def _path(self, tokens: torch.Tensor, token_path: str) -> torch.Tensor:
        if token_path == "projected":
            return self._project(tokens)
        return self.visual.ln_post(tokens) if token_path == "ln_post" else tokens

    @torch.no_grad()
    def encode_image(
        self,
        batch: torch.Tensor,
        blocks: Sequence[int] | str = (),
        token_path: str = "projected",
    ) -> VisualOutputs:
        """CLS embedding and per-block patch tokens of a normalised (B, 3, H, W) batch.

        ``blocks`` are resolved as in config (``resolve_blocks``); none by default. The batch is
        resized (bilinear) to the encoder's input size when it differs.
        """
        if token_path not in TOKEN_PATHS:
            raise ConfigError(f"token path {token_path!r} is not one of {TOKEN_PATHS}")
        taps = self.resolve_blocks(blocks) if blocks else ()
        v = self.visual
        x = v.ln_pre(v.patch_dropout(self._embedded(batch)))
        if taps:
            x, outs = v.transformer.forward_intermediates(x, indices=list(taps))
        else:
            x, outs = v.transformer(x), []
        h, w = self.grid
        patches = tuple(
            self._path(y[:, 1:], token_path).reshape(y.shape[0], h, w, -1) for y in outs
        )
        return VisualOutputs(cls=self._project(x[:, 0]), patches=patches, blocks=taps)

    @torch.no_grad()
    def encode_windows(
        self, batch: torch.Tensor, windows: torch.Tensor, chunk: int = 4096
    ) -> torch.Tensor:
        """(B, n, D): the projected CLS of [CLS] + each window's patch tokens run on their own.

        ``windows`` is (n, k) row-major patch indices (``winclip.window_indices``). Tokens are
        picked after the positional embedding is added, so each keeps its own position; all
        windows have k tokens, so they run as one batch of B*n sequences (``chunk`` at a time).
        """
        n_patches = self.grid[0] * self.grid[1]
        if windows.ndim != 2 or windows.numel() == 0:
            raise ValueError(
                f"windows must be a non-empty (n, k) index, got {tuple(windows.shape)}"
            )
        if int(windows.min()) < 0 or int(windows.max()) >= n_patches:
            raise ValueError(f"window indices outside the {self.grid} patch grid")
        x = self._embedded(batch)
        cls = torch.zeros(len(windows), 1, dtype=torch.long)
        index = torch.cat([cls, windows.cpu().long() + 1], dim=1).to(x.device)
        seqs = x[:, index].flatten(0, 1)  # (B*n, 1 + k, width)
        v = self.visual
        out = [
            self._project(v.transformer(v.ln_pre(v.patch_dropout(part)))[:, 0])
            for part in seqs.split(chunk)
        ]
        return torch.cat(out).reshape(x.shape[0], len(windows), -1)

    @torch.no_grad()
    def encode_text(self, sentences: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """(N, D) text embeddings (not normalised), ``batch_size`` sentences at a time."""
        sentences = list(sentences)
        out = [
            self.model.encode_text(self.tokenizer(sentences[i : i + batch_size]).to(self.device))
            for i in range(0, len(sentences), batch_size)
        ]
        return torch.cat(out)

    @torch.no_grad()
    def embed_text(self, sentences: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens (N, L), token embeddings (N, L, width)): the text tower's input, before the
        positions are added; ``encode_text_embeddings`` finishes what ``encode_text`` does.
        """
        tokens = self.tokenizer(list(sentences)).to(self.device)
        cast = self.model.transformer.get_cast_dtype()
        return tokens, self.model.token_embedding(tokens).to(cast)

    @torch.no_grad()
    def encode_text_embeddings(
        self, tokens: torch.Tensor, embeddings: torch.Tensor, batch_size: int = 256
    ) -> torch.Tensor:
        """(N, D) text embeddings from (possibly perturbed) token embeddings, as open_clip's
        ``encode_text`` computes them after its embedding lookup; ``tokens`` locate the pooled
        (end-of-text) position.
        """
        from open_clip.transformer import text_global_pool

        m = self.model
        cast = m.transformer.get_cast_dtype()
        out = []
        for i in range(0, len(tokens), batch_size):
            x = embeddings[i : i + batch_size].to(cast) + m.positional_embedding.to(cast)
            x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask))
            x = text_global_pool(
                x, tokens[i : i + batch_size], m.text_pool_type, getattr(m, "text_eos_id", None)
            )
            if isinstance(m.text_projection, torch.nn.Linear):
                x = m.text_projection(x)
            elif m.text_projection is not None:
                x = x @ m.text_projection
            out.append(x)
        return torch.cat(out)


def load_clip(
    name: str,
    weights: str = "pretrained",
    input_size: int | Sequence[int] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    interpolation: str = "bilinear",
    resample: str = "bilinear",
) -> ClipEncoder:
    """Build a registered CLIP (both towers), offline, optionally at another input size.

    ``input_size`` (px) resamples the position grid with ``interpolation`` (``bilinear``, as
    METHODS §0 for ViT-L/14 at 518; ``bicubic`` also works); the CLS position is kept.
    ``resample`` is the PIL filter of the image resize before the encoder (``bilinear``, or
    ``bicubic`` as anomalib's WinCLIP and the CLIP papers' pre-processing).
    """
    if resample not in RESAMPLES:
        raise ConfigError(f"backbone {name!r}: resample {resample!r} is not one of {RESAMPLES}")
    spec = spec_for(name)
    if spec.family != "clip":
        raise ConfigError(f"backbone {name!r} is a {spec.family} model, not a CLIP")
    resolved = resolve_weights(weights, spec)
    model, preprocessing = build_clip_model(spec, resolved, seed)
    _check_supported(name, model.visual)
    if input_size is not None:
        size = set_input_size(model.visual, input_size, interpolation)
        preprocessing = replace(preprocessing, input_size=size)
    tokenizer = bundled_tokenizer(spec.library_name)
    return ClipEncoder(name, model.to(device), tokenizer, preprocessing, resolved, resample)


def text_prototypes(
    encoder: ClipEncoder,
    normal: Sequence[str],
    anomalous: Sequence[str],
    normalize_each: bool = True,
    batch_size: int = 256,
) -> torch.Tensor:
    """(2, D) unit prototypes [t_normal, t_anomalous] of two sentence lists (see ``prototypes``)."""
    for state, sentences in (("normal", normal), ("anomalous", anomalous)):
        if not sentences:
            raise ConfigError(f"no {state} prompts")
    return prototypes(
        encoder.encode_text(normal, batch_size),
        encoder.encode_text(anomalous, batch_size),
        normalize_each,
    )


def prototypes(
    normal: torch.Tensor, anomalous: torch.Tensor, normalize_each: bool = True
) -> torch.Tensor:
    """(2, D) unit prototypes from (N_n, D) and (N_a, D) sentence embeddings: the mean per state.

    Ambiguous (METHODS §2.1): APRIL-GAN normalises each sentence embedding before averaging
    (``normalize_each=True``); anomalib's WinCLIP averages raw embeddings (``False``). Both
    normalise the mean.
    """
    rows = []
    for emb in (normal, anomalous):
        if normalize_each:
            emb = F.normalize(emb, dim=-1)
        rows.append(F.normalize(emb.mean(0), dim=-1))
    return torch.stack(rows)
