# sa2va-st: from nothing to a trained, evaluated spatial-temporal grounding model.
# Stages are one rule file each under workflow/rules/; the logic lives in src/sa2va_st/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/unpack.smk"
include: "workflow/rules/sources.smk"
include: "workflow/rules/inventory.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/special_jsons.smk"
include: "workflow/rules/manifests.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.prepare_data.input,
        rules.extract_clip_features.input,
        rules.special_jsons.output,
        rules.manifests.input,
        rules.train.output,
        rules.train_answers.output,
        rules.evaluate.input,
        rules.report.output,
