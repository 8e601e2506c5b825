# iadbench: manifest -> features -> fit -> score -> metrics -> summary -> report.
from snakemake.utils import min_version

from iadbench.config import check_config_file, prepare_config

min_version("9.0")


# The demo config is the default; a --configfile replaces it instead of merging into it.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


CONFIG_FILES = [str(p) for p in workflow.config_settings.configfiles] or ["config/config.yaml"]
for path in CONFIG_FILES:
    check_config_file(path)
# Defaults filled in; grids and seed lists become one validated method entry per cell.
_concrete, GRID = prepare_config(config, workflow.source_path("config/schema.yaml"), CONFIG_FILES)
config.update(_concrete)


include: "rules/common.smk"


wildcard_constraints:
    dataset=_alternation(DATASETS),
    backbone=_alternation(BACKBONES),
    method=_alternation(METHODS),
    split="train|test",
    category="[^/]+",
    train_category="[^/]+",
    other="[^/]+",


include: "rules/data.smk"
include: "rules/features.smk"
include: "rules/fit.smk"
include: "rules/score.smk"
include: "rules/evaluate.smk"
include: "rules/cross_domain.smk"


rule all:
    default_target: True
    input:
        rules.aggregate.output,
        rules.report.output.html,
        cross_domain_outputs(),
