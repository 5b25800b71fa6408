# special_jsons: fps-independent normalised annotations of every dataset present under data_root
# (boxes from masks, windows in seconds), each file schema-checked and reproducible byte for byte.


rule special_jsons:
    input:
        inventory=INVENTORY,
    output:
        report=SPECIAL_JSONS_REPORT,
    params:
        python=PYTHON,
        script=SCRIPTS / "build_special_jsons.py",
        data_root=DATA_ROOT,
        out_dir=lambda wildcards, output: str(Path(output.report).parent),
        schema_dir=Path(workflow.basedir) / "workflow" / "schemas" / "special_jsons",
    resources:
        mem_mb=24000,  # MeViS's mask dict is parsed whole
        runtime=120,
    log:
        log_path("special_jsons.log"),
    conda:
        CONDA_ENV
    shell:
        "{params.python} {params.script} --data-root {params.data_root:q} --out-dir {params.out_dir:q}"
        " --schema-dir {params.schema_dir:q} > {log:q} 2>&1"
