# unpack: one job per archive; safe, staged extraction, then its datasets are moved into the
# tree of docs/architecture.md under data_root. The marker records the archive's checksums.


rule unpack:
    input:
        receipt=RECEIPT,
    output:
        marker=UNPACKED,
    params:
        python=PYTHON,
        script=SCRIPTS / "unpack.py",
        data_root=lambda wildcards, output: data_root_of(output.marker),
        limits=lambda wildcards: unpack_limits(),
    resources:
        mem_mb=4000,
        runtime=240,
    log:
        log_path("unpack", "{archive}.log"),
    conda:
        CONDA_ENV
    shell:
        "{params.python} {params.script} --receipt {input.receipt:q} --data-root {params.data_root:q}"
        " --marker {output.marker:q} {params.limits} > {log:q} 2>&1"
