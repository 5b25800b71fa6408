# extract_clip_features: CLIP features of every temporal dataset's videos at the configured fps,
# a fixed number of shard jobs per dataset, each resumable video by video; then one index per
# dataset. Another fps or model writes beside, never over, an existing feature set, and a folder
# refuses features of another model set-up (its identity.json).


wildcard_constraints:
    dataset="|".join(re.escape(name) for name in TEMPORAL_DATASETS) or "(?!)",
    shard=r"\d+",


rule clip_features_shard:
    input:
        videos=videos_source_marker,
    output:
        index=FEATURE_SHARD_INDEX,
    params:
        python=PYTHON,
        script=SCRIPTS / "extract_clip_features.py",
        videos=videos_folder,
        out_dir=lambda wildcards, output: str(Path(output.index).parent.parent),
        identity=lambda wildcards, output: paths.feature_identity(str(Path(output.index).parent.parent)),
        shards=CLIP["shards"],
        fps=FPS,
        model=CLIP["model"],
        pretrained=CLIP["pretrained"],
        batch_size=CLIP["batch_size"],
        precision=CLIP["precision"],
        num_workers=CLIP["num_workers"],
        max_failed_fraction=CLIP["max_failed_fraction"],
    threads: CLIP["num_workers"] + 1
    resources:
        gpu=GPU_JOB,
        mem_mb=16000,
        runtime=240,
    log:
        log_path(FEATURE_LOGS, "shard{shard}.log"),
    benchmark:
        f"{paths.BENCHMARKS}/{FEATURE_LOGS}/shard{{shard}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "{params.python} {params.script} --videos {params.videos:q} --shard {wildcards.shard} --shards {params.shards}"
        " --fps {params.fps} --model {params.model:q} --pretrained {params.pretrained:q}"
        " --batch-size {params.batch_size} --precision {params.precision} --num-workers {params.num_workers}"
        " --max-failed-fraction {params.max_failed_fraction} --out-dir {params.out_dir:q}"
        " --identity {params.identity:q} --index {output.index:q} --device auto > {log:q} 2>&1"


rule clip_features_index:
    input:
        shards=expand(FEATURE_SHARD_INDEX, shard=range(CLIP["shards"]), allow_missing=True),
    output:
        index=FEATURE_INDEX,
    params:
        python=PYTHON,
        script=SCRIPTS / "extract_clip_features.py",
    log:
        log_path(FEATURE_LOGS, "index.log"),
    conda:
        CONDA_ENV
    shell:
        "{params.python} {params.script} merge --out {output.index:q} {input.shards:q} > {log:q} 2>&1"


rule extract_clip_features:
    input:
        expand(FEATURE_INDEX, dataset=TEMPORAL_DATASETS),
