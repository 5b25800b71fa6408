# train: the shared spatial-temporal model on the whole mix with upstream's recipe, through torchrun +
# DeepSpeed (one process per GPU this job gets; training.processes on a CPU). Under the SLURM profile
# (resources mpi, nodes, tasks_per_node) the job runs its own srun: one torchrun per node. Checkpoints live under
# work_dir (undeclared, so Snakemake never deletes them: a killed run resumes from the newest); the
# declared outputs are the exported model and the run's metrics. train_answers then asks the model
# a fixed set of its training samples through the inference API.


rule train:
    input:
        spatial=SPATIAL_MANIFESTS_REPORT,
        temporal=TEMPORAL_MANIFESTS_REPORT if TEMPORAL_DATASETS else [],
    output:
        model=directory(TRAINED_MODEL),
        metrics=TRAIN_METRICS,
    params:
        python=PYTHON,
        script=SCRIPTS / "train.py",
        launcher=train_launcher,
        settings=TRAIN_SETTINGS,
        spatial=lambda wildcards, input: str(Path(input.spatial).parent),
        temporal=temporal_manifests_of,
        work_dir=WORK_DIR,
        out_dir=lambda wildcards, output: str(Path(output.metrics).parent),
        deepspeed=DEEPSPEED_JSON,
        rank_logs=RANK_LOGS,
        start_over=START_OVER_FLAG,
    threads: TRAIN_PROCESSES
    resources:
        gpu=TRAIN_GPUS,
        nodes=1,
        mem_mb=TRAIN_MEM_MB,
        runtime=TRAIN_RUNTIME_MIN,
    log:
        log_path("train", f"{RUN}.log"),
    conda:
        CONDA_ENV
    shell:
        "{params.launcher} {params.script} run --config-json {params.settings:q}"
        " --spatial-manifests {params.spatial:q} --temporal-manifests {params.temporal:q}"
        " --work-dir {params.work_dir:q} --out-dir {params.out_dir:q} --deepspeed-config {params.deepspeed:q}"
        " {params.start_over} > {log:q} 2>&1"
        " || ({params.python} {params.script} failure --torchrun-log {log:q} --log-dir {params.rank_logs:q}"
        " >> {log:q} 2>&1; exit 1)"


rule train_answers:
    input:
        model=TRAINED_MODEL,
        spatial=SPATIAL_MANIFESTS_REPORT,
        temporal=TEMPORAL_MANIFESTS_REPORT if TEMPORAL_DATASETS else [],
    output:
        answers=TRAINING_ANSWERS,
    params:
        python=PYTHON,
        script=SCRIPTS / "train.py",
        settings=TRAIN_SETTINGS,
        spatial=lambda wildcards, input: str(Path(input.spatial).parent),
        temporal=temporal_manifests_of,
    resources:
        gpu=GPU_JOB,
        mem_mb=32000,
        runtime=60,
    log:
        log_path("train", f"{RUN}_answers.log"),
    conda:
        CONDA_ENV
    shell:
        "{params.python} {params.script} answers --config-json {params.settings:q} --model {input.model:q}"
        " --spatial-manifests {params.spatial:q} --temporal-manifests {params.temporal:q}"
        " --out {output.answers:q} > {log:q} 2>&1"
