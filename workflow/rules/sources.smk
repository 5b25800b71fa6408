# fetch_source: one job per entry of `sources` (Charades videos, Charades-STA and DiDeMo
# annotations, ReVOS, ...), of kind url, hf or local. A missing local source fails with the
# entry's instructions.


rule fetch_source:
    output:
        marker=SOURCE_MARKER,
    params:
        python=PYTHON,
        script=SCRIPTS / "fetch_source.py",
        spec=source_spec,
        data_root=lambda wildcards, output: data_root_of(output.marker),
        download_dir=DOWNLOAD_DIR,
        limits=lambda wildcards: unpack_limits(),
    resources:
        mem_mb=4000,
        runtime=720,  # Charades' 15 GB video archive: download and unpack
    log:
        log_path("sources", "{source}.log"),
    conda:
        CONDA_ENV
    shell:
        "{params.python} {params.script} --name {wildcards.source:q} --spec {params.spec:q}"
        " --data-root {params.data_root:q} --download-dir {params.download_dir:q}"
        " --marker {output.marker:q} {params.limits} > {log:q} 2>&1"
