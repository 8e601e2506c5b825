# iadbench: manifest -> features -> fit -> score -> metrics -> summary.
from snakemake.utils import min_version, validate

min_version("9.0")


# The demo config is the default; a --configfile replaces it instead of merging into it.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"



validate(config, "config/schema.yaml", set_default=True)


include: "rules/common.smk"
wildcard_constraints:
    dataset=_alternation(DATASETS),
    backbone=_alternation(BACKBONES),
    method=_alternation(METHODS),
    split="train|test",
    category="[^/]+",


include: "rules/data.smk"
include: "rules/features.smk"
include: "rules/fit.smk"
include: "rules/score.smk"
include: "rules/evaluate.smk"


rule all:
    default_target: True
    input:
        rules.aggregate.output,
