"""PatchCore + EfficientNet-Lite0 on the real MVTec AD bottle category (skips without ../shared)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from test_workflow import snakemake


@pytest.mark.realdata
@pytest.mark.e2e
def test_patchcore_lite0_on_real_bottle_meets_published_level(shared_mvtec, tmp_path):
    config = yaml.safe_load(
        (snakemake.__globals__["REPO"] / "config/examples/mvtec_bottle.yaml").read_text()
    )
    config["datasets"]["mvtec_ad"]["root"] = str(shared_mvtec)
    config["methods"]["patchcore_lite0"]["coreset"] = 0.01  # CI time; 0.1 gives the same numbers
    config["warm_jobs"] = True  # as the other end-to-end tests (test_workflow.write_config)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path)
    summary = pd.read_csv(tmp_path / "results/summary/metrics.csv")
    row = summary[summary["category"] == "bottle"].iloc[0]
    print(row[["image_auroc", "pixel_auroc", "aupro"]].to_dict())
    assert row["image_auroc"] >= 0.99
    assert row["pixel_auroc"] >= 0.97
    assert row["aupro"] >= 0.90
