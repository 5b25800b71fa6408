# evaluate: each scored model (evaluation.models: the trained one and its untrained starting point) on
# each benchmark split. evaluate_shard asks the model every question of one shard of a split (one job
# per GPU; resumable within the shard) and saves the answers; evaluate_split scores the saved answers
# without the model, so a metric can be re-scored at any time. A split whose labels a server holds
# (MeViS valid, Ref-YouTube-VOS valid) is predicted the same way and evaluate_submission writes the
# archive its server reads (PNG masks from SAM2) instead of metrics.


rule untrained_model:
    output:
        model=directory(UNTRAINED_MODEL),
    params:
        python=PYTHON,
        script=SCRIPTS / "evaluate.py",
        settings=UNTRAINED_SETTINGS,
    resources:
        mem_mb=32000,
        runtime=60,
    log:
        log_path("evaluate", f"{RUN}_untrained_model.log"),
    conda:
        CONDA_ENV
    shell:
        "{params.python} {params.script} untrained --config-json {params.settings:q} --out {output.model:q}"
        " > {log:q} 2>&1"


rule evaluate_shard:
    wildcard_constraints:
        **EVAL_WILDCARDS,
    input:
        model=lambda wildcards: SCORED_MODELS[wildcards.model],
        manifests=benchmark_manifests,
    output:
        predictions=SPLIT_PREDICTIONS,
    params:
        python=PYTHON,
        script=SCRIPTS / "evaluate.py",
        benchmark=lambda wildcards: f"{wildcards.dataset}/{wildcards.split}",
        spatial=paths.spatial_manifests_dir(MANIFESTS),
        temporal=TEMPORAL_MANIFESTS,
        video_frames=EVAL_VIDEO_FRAMES,
        batch_size=EVALUATION["batch_size"],
        num_shards=EVAL_SHARDS,
        masks=lambda wildcards: "" if catalog.dataset(wildcards.dataset).task == catalog.TEMPORAL_GROUNDING else EVAL_MASK_ARGS,
    resources:
        gpu=GPU_JOB,
        mem_mb=32000,
        runtime=12 * 60,
    log:
        log_path("evaluate", "{model}", "{dataset}_{split}.{shard}.log"),
    conda:
        CONDA_ENV
    shell:
        "{params.python} {params.script} predict --model {input.model:q} --benchmark {params.benchmark:q}"
        " --spatial-manifests {params.spatial:q} --temporal-manifests {params.temporal:q}"
        " --video-frames {params.video_frames} --batch-size {params.batch_size}"
        " --shard {wildcards.shard} --num-shards {params.num_shards} {params.masks} --out {output.predictions:q}"
        " > {log:q} 2>&1"


rule evaluate_split:
    wildcard_constraints:
        **EVAL_WILDCARDS,
    input:
        predictions=expand(SPLIT_PREDICTIONS, shard=range(EVAL_SHARDS), allow_missing=True),
    output:
        metrics=SPLIT_METRICS,
    params:
        python=PYTHON,
        script=SCRIPTS / "evaluate.py",
        benchmark=lambda wildcards: f"{wildcards.dataset}/{wildcards.split}",
    log:
        log_path("evaluate", "{model}", "{dataset}_{split}.score.log"),
    conda:
        CONDA_ENV
    shell:
        "{params.python} {params.script} score --benchmark {params.benchmark:q} --out {output.metrics:q}"
        " {input.predictions:q} > {log:q} 2>&1"


rule evaluate_submission:
    wildcard_constraints:
        **EVAL_WILDCARDS,
    input:
        predictions=expand(SPLIT_PREDICTIONS, shard=range(EVAL_SHARDS), allow_missing=True),
    output:
        archive=SPLIT_SUBMISSION,
    params:
        python=PYTHON,
        script=SCRIPTS / "evaluate.py",
        benchmark=lambda wildcards: f"{wildcards.dataset}/{wildcards.split}",
    log:
        log_path("evaluate", "{model}", "{dataset}_{split}.submission.log"),
    conda:
        CONDA_ENV
    shell:
        "{params.python} {params.script} submit --benchmark {params.benchmark:q} --out {output.archive:q}"
        " {input.predictions:q} > {log:q} 2>&1"


rule evaluate:
    input:
        evaluation_metrics(),
        evaluation_submissions(),
