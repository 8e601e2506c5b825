"""The weld kinds' shared parameters and needs (torch-free: the DAG build reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.methods.params import Needs, Params, param

# Needs.inputs of each embedding role (photos are images of the run).
ROLE_INPUTS = {"video": "video", "audio": "audio", "sensor": "sensor", "photo": "images"}
# A weld kind's entry reads no backbone (causal_film's text anchor excepted) and no train set.
ENTRY_KEYS = {
    "kind": "",
    "datasets": "multimodal datasets (layout weld)",
    "seed": "",
    "grid": "",
    "uses": "",
}


def encoders_param(*roles: str, doc: str = "role -> key of encoders (its modality must be the "
                   "role's)") -> Any:  # fmt: skip
    """``encoders``: each of ``roles`` mapped to a key of the config's ``encoders:``; by default
    the entry of the role's own name."""
    return param(
        {role: role for role in roles},
        doc,
        additionalProperties=False,
        required=list(roles),
        properties={role: {"type": "string", "minLength": 1} for role in roles},
    )


@dataclass(frozen=True)
class MultimodalParams(Params):
    """What the weld kinds share: ``encoders`` maps each of the kind's roles to a key of the
    config's ``encoders:``; one fit per dataset on TRAIN normal runs, image-level scores only."""

    kind_name: ClassVar[str] = ""
    roles: ClassVar[tuple[str, ...]] = ()
    entry_keys: ClassVar[dict[str, str]] = ENTRY_KEYS

    def needs(self) -> Needs:
        return Needs(
            frozenset(ROLE_INPUTS[role] for role in self.roles),
            "per_category",
            maps=False,
            embeddings=tuple((role, self.encoders[role]) for role in self.roles),
        )

    def describe(self, state: dict) -> dict[str, Any]:
        return {"encoders": ",".join(f"{r}={self.encoders[r]}" for r in self.roles)}
