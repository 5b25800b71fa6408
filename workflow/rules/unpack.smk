# unpack: one job per archive; safe, staged extraction, then its datasets are moved into the
# tree of DESIGN.md under data_root. The marker records the archive's checksums.


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
    log:
        f"{LOGS}/unpack/{{archive}}.log",
    conda:
        "../../envs/spatial.yaml"
    shell:
        "{params.python} {params.script} --receipt {input.receipt:q} --data-root {params.data_root:q}"
        " --marker {output.marker:q} {params.limits} > {log:q} 2>&1"
