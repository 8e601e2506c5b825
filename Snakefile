# iadbench: manifest -> features -> fit -> score -> metrics -> summary -> report.
from snakemake.utils import min_version, validate

from iadbench.config import check_config_file, expand_methods

min_version("9.0")


# The demo config is the default; a --configfile replaces it instead of merging into it.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


for path in workflow.config_settings.configfiles or ["config/config.yaml"]:
    check_config_file(path)
validate(config, "config/schema.yaml", set_default=True)
# Grids and seed lists become one concrete method entry per cell; each is validated again.
config["methods"], GRID = expand_methods(config["methods"])
validate(config, "config/schema.yaml", set_default=True)


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
        cross_domain_outputs(),
