# Every result path, in one place. Rules chain with rules.<name>.output.<key>; target lists and
# input functions fill these templates with path(); nothing else spells a result path.
MANIFEST = "results/{dataset}/manifest.parquet"
FEATURES = "results/{dataset}/features/{backbone}/{category}/{split}.{ext}"
# Features of synthetic anomalies of a category's train images (a gate reading features trains
# on them): recipe, copies per image, seed.
SYNTHETIC_FEATURES = (
    "results/{dataset}/features/{backbone}/{category}/synthetic/{recipe}-n{copies}-s{seed}.{ext}"
)
# Per-modality embeddings of multimodal samples (one encoder of the config's encoders:).
EMBEDDINGS = "results/{dataset}/embeddings/{encoder}/{modality}/{category}/{split}.{ext}"
# CLIP outputs: the CLS embedding + patch tokens of a view ("<token_path>" or
# "<token_path>-b<block>-...", or a kind's own: "crane-<hash of its options>"), window
# embeddings per window sizes ("2-3"), sentence embeddings of a prompt set for one class name
# (URL-quoted: "metal+nut") and R noisy prototype pairs of that text (sigma as repr(float)).
CLIP_VISUAL = "results/{dataset}/clip/{backbone}/{category}/{split}/visual-{view}.npz"
CLIP_WINDOWS = "results/{dataset}/clip/{backbone}/{category}/{split}/windows-{sizes}.npz"
# The frozen residual stream trained CLIP heads start from ("raw-b<block>-..."): fp16 tokens
# (memory-mapped by the train jobs) and, beside them, image embeddings, sample order, identity.
CLIP_FROZEN = "results/{dataset}/clip/{backbone}/{category}/{split}/frozen-{view}.npy"
CLIP_FROZEN_META = "results/{dataset}/clip/{backbone}/{category}/{split}/frozen-{view}.npz"
TEXT = "results/text/{backbone}/{prompts}/{class_slug}.npz"
BAYES_TEXT = (
    "results/text/{backbone}/{prompts}/{class_slug}/bayes-s{sigma}-r{samples}-seed{seed}.npz"
)
FIT_STATE = "results/{dataset}/models/{method}/{category}"
TRAINED = "results/models/{method}/{train_set}"
# A multi-class model trained once per dataset on the train split of all its categories.
DATASET_MODEL = "results/{dataset}/multiclass/{method}"
RESUME_ROOT = "results/.resume"
SCORES = "results/{dataset}/scores/{method}/{category}/{split}/{file}"
METRICS = "results/{dataset}/metrics/{method}/{category}/{split}.json"
MICRO = "results/{dataset}/micro/{method}.json"  # test split, all categories pooled
CROSS_SCORES = "results/{dataset}/cross/{method}/{train_category}/{category}/{split}/{file}"
CROSS_METRICS = "results/{dataset}/cross/{method}/{train_category}/{category}/{split}.json"
DOMAIN = "results/{dataset}/domain/{backbone}/{train_category}/{category}.json"
LATENCY = "results/{dataset}/latency/{method}/{category}.parquet"
VARIANCE_CSV = "results/{dataset}/variance/{method}/{category}.csv"
VARIANCE_PNG = "results/{dataset}/variance/{method}/{category}.png"
LATENCY_CSV = "results/summary/latency.csv"
SWEEP_CSV = "results/summary/cascade_sweep.csv"
SUMMARY_CSV = "results/summary/metrics.csv"
SUMMARY_MD = "results/summary/metrics.md"
CROSS_DATASET_CSV = "results/summary/cross_dataset.csv"
CROSS_DATASET_MD = "results/summary/cross_dataset.md"
CROSS_SUMMARY = "results/summary/cross_domain.csv"
TIMINGS_CSV = "results/summary/timings.csv"
BENCHMARKS = "results/benchmarks"
LOGS = "results/logs"
REPORT_HTML = "results/summary/report.html"
REPORT_FIGURES = "results/summary/report_figures"


def path(template, **fields):
    """A template with some fields filled; the others stay as Snakemake wildcards."""
    return template.format_map(_KeepMissing(fields))


class _KeepMissing(dict):
    def __missing__(self, key):
        return f"{{{key}}}"


def log_of(rule, pattern):
    """Where a rule's log goes (one file per job)."""
    return f"{LOGS}/{rule}/{pattern}.log"


# Each rule's wildcards pattern, as given to benchmark_of: the timings step names the
# {method} part of a benchmark file's path with it.
BENCHMARK_PATTERNS = {}


def benchmark_of(rule, pattern):
    """Where a rule's benchmark table goes (wall time and peak memory per job)."""
    BENCHMARK_PATTERNS[rule] = pattern
    return f"{BENCHMARKS}/{rule}/{pattern}.tsv"
