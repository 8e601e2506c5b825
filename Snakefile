# iadbench: manifest -> features -> fit | train -> score (test, val) -> metrics -> summary, report.
# Building this DAG imports no torch: method kinds declare their needs in a torch-free module.
import os

from snakemake.utils import min_version

from iadbench.config import check_config_file, prepare_config
from iadbench.startup import check_dataset_paths

min_version("9.0")


# The landing page of Snakemake's own report (snakemake --report report.html); the results it
# shows are marked report(...) in the rule files, their captions in workflow/report/.
report: "workflow/report/workflow.rst"


# The demo config is the default; a --configfile replaces it instead of merging into it.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


# The files the config came from: --configfile, or a configfile: directive (here, or in a
# workflow that uses this one as a module and passes its config); "config" when none.
CONFIG_FILES = [str(p) for p in workflow.configfiles] or ["config"]
for config_file in CONFIG_FILES:
    if os.path.isfile(config_file):
        check_config_file(config_file)
# Defaults filled in; grids and seed lists become one validated method entry per cell.
_concrete, GRID = prepare_config(config, workflow.source_path("config/schema.yaml"), CONFIG_FILES)
config.update(_concrete)
# Dataset roots and listed categories exist (generated demo data excepted): fail here, naming
# the path, rather than in a manifest job.
check_dataset_paths(config, CONFIG_FILES)


include: "rules/paths.smk"
include: "rules/common.smk"


wildcard_constraints:
    dataset=alternation(DATASETS),
    backbone=alternation(BACKBONES),
    method=alternation(METHODS),
    train_set=alternation(TRAIN_SETS),
    encoder=alternation(ENCODERS),
    modality="video|audio|sensor|photo",
    split=alternation(SPLITS),
    category="[^/]+",
    view="[a-z_]+(-b[0-9]+)*|crane-[0-9a-f]{8}",
    sizes="[0-9]+(-[0-9]+)*",
    prompts="[^/]+",
    class_slug="[^/]+",
    sigma="[0-9][0-9.e+-]*",
    samples="[0-9]+",
    seed="[0-9]+",
    train_category="[^/]+",


include: "rules/data.smk"
include: "rules/features.smk"
include: "rules/clip.smk"
include: "rules/fit.smk"
include: "rules/score.smk"
include: "rules/evaluate.smk"
include: "rules/cross_domain.smk"


# Local runs with warm_jobs: true (opt-in): script jobs run in forks of one process that imported
# torch and the library once (iadbench.warm; refused off Linux). Cluster jobs start their own
# interpreters.
_WARM_SERVERS = []


onstart:
    if config["warm_jobs"] and workflow.local_exec:
        from iadbench.warm import start_server

        _WARM_SERVERS.append(start_server())


onsuccess:
    for server in _WARM_SERVERS:
        server.stop()


onerror:
    for server in _WARM_SERVERS:
        server.stop()


rule all:
    default_target: True
    input:
        rules.summary.output,
        TIMINGS_CSV,
        rules.report.output.html,
        val_targets(),
        cross_domain_outputs(),
        latency_outputs(),
        sweep_outputs(),
        variance_outputs(),
