# report: one page with the scorecard (ours beside the published numbers), provenance, data health,
# training curves and checkpoints, temporal and spatial diagnostics. `snakemake --report
# results/report.html` wraps it (and the other report() outputs) in Snakemake's own report.


rule report:
    input:
        metrics=evaluation_metrics(),
        predictions=[
            paths.split_predictions(model, b.dataset, b.split, shard, EVAL_SHARDS)
            for model in EVALUATION["models"]
            for b in BENCHMARKS
            for shard in range(EVAL_SHARDS)
        ],
        submissions=evaluation_submissions(),
        train_metrics=TRAIN_METRICS,
        training_answers=TRAINING_ANSWERS,
        spatial=SPATIAL_MANIFESTS_REPORT,
        temporal=TEMPORAL_MANIFESTS_REPORT if TEMPORAL_DATASETS else [],
        receipts=expand(RECEIPT, archive=HUB_FILES),
        feature_indexes=expand(FEATURE_INDEX, dataset=TEMPORAL_DATASETS),
    output:
        page=report(
            REPORT_PAGE,
            caption="../report/page.rst",
            category="Summary",
            labels={"page": "scorecard, provenance, data health, training, temporal, spatial"},
        ),
    params:
        python=PYTHON,
        script=SCRIPTS / "report.py",
        settings=REPORT_SETTINGS,
        models=EVALUATION["models"],
        spatial=lambda wildcards, input: str(Path(input.spatial).parent),
        temporal=temporal_manifests_of,
        identities=[paths.feature_identity(paths.features_dir(DATA_ROOT, d, FEATURES_LABEL, FPS)) for d in TEMPORAL_DATASETS],
        random_weights="--random-weights" if config["report"]["random_weights"] else "",
    log:
        log_path("report", "report.log"),
    conda:
        CONDA_ENV
    shell:
        "{params.python} {params.script} --config-json {params.settings:q} --models {params.models}"
        " --out {output.page:q} --train-metrics {input.train_metrics:q} --training-answers {input.training_answers:q}"
        " --manifest-report {input.spatial:q} {input.temporal:q} --spatial-manifests {params.spatial:q}"
        " --temporal-manifests {params.temporal:q} --receipt {input.receipts:q} --identity {params.identities:q}"
        " --predictions {input.predictions:q} --submissions {input.submissions:q} {params.random_weights}"
        " > {log:q} 2>&1"
