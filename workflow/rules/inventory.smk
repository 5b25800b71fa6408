# prepare_data: every archive unpacked and every source in place, summarised in one inventory.


rule inventory:
    input:
        unpacked=expand(UNPACKED, archive=HUB_FILES),
        sources=expand(SOURCE_MARKER, source=SOURCES),
    output:
        inventory=INVENTORY,
    params:
        python=PYTHON,
        script=SCRIPTS / "inventory.py",
        data_root=lambda wildcards, input: data_root_of(input.unpacked[0]),
    log:
        log_path("inventory.log"),
    conda:
        CONDA_ENV
    shell:
        "{params.python} {params.script} --data-root {params.data_root:q} --out {output.inventory:q} > {log:q} 2>&1"


rule prepare_data:
    input:
        INVENTORY,
