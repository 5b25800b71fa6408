# manifests: training-ready Parquet tables per dataset and split (spatial: fps-independent; temporal:
# at the configured fps, against one feature set) and a validation report counting every record
# kept, clipped or dropped, by reason.


rule spatial_manifests:
    input:
        special_jsons=SPECIAL_JSONS_REPORT,
    output:
        report=SPATIAL_MANIFESTS_REPORT,
    params:
        python=PYTHON,
        script=SCRIPTS / "build_manifests.py",
        special_jsons=lambda wildcards, input: str(Path(input.special_jsons).parent),
        data_root=DATA_ROOT,
        out_dir=lambda wildcards, output: str(Path(output.report).parents[1]),  # results/manifests
    resources:
        mem_mb=16000,
        runtime=60,
    log:
        log_path("manifests", "spatial.log"),
    conda:
        CONDA_ENV
    shell:
        "{params.python} {params.script} spatial --special-jsons {params.special_jsons:q}"
        " --data-root {params.data_root:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule temporal_manifests:
    input:
        unpack(
            lambda wildcards: {
                f"videos_{name}": marker for name, marker in temporal_video_markers(wildcards).items()
            }
        ),
        special_jsons=SPECIAL_JSONS_REPORT,
        features=expand(FEATURE_INDEX, dataset=TEMPORAL_DATASETS),
    output:
        report=TEMPORAL_MANIFESTS_REPORT,
    params:
        python=PYTHON,
        script=SCRIPTS / "build_manifests.py",
        special_jsons=lambda wildcards, input: str(Path(input.special_jsons).parent),
        data_root=lambda wildcards, input: data_root_of(input[f"videos_{TEMPORAL_DATASETS[0]}"]),
        out_dir=lambda wildcards, output: str(Path(output.report).parents[3]),  # results/manifests
        features_label=FEATURES_LABEL,
        fps=FPS,
        datasets=" ".join(TEMPORAL_DATASETS),
        folders=temporal_folder_options,
    resources:
        mem_mb=16000,
        runtime=60,
    log:
        log_path("manifests", f"temporal_{FEATURES_LABEL}_{paths.fps_label(FPS)}.log"),
    conda:
        CONDA_ENV
    shell:
        "{params.python} {params.script} temporal --special-jsons {params.special_jsons:q}"
        " --data-root {params.data_root:q} --out-dir {params.out_dir:q}"
        " --features-label {params.features_label:q} --fps {params.fps} --datasets {params.datasets} {params.folders}"
        " > {log:q} 2>&1"


rule manifests:
    input:
        SPATIAL_MANIFESTS_REPORT,
        TEMPORAL_MANIFESTS_REPORT if TEMPORAL_DATASETS else [],
