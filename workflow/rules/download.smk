# download: one job per configured archive of the Sa2VA-Training repo (all its split parts),
# verified against the hub's sha256. Nothing else of the repo is fetched.


rule download:
    output:
        receipt=RECEIPT,
    params:
        python=PYTHON,
        script=SCRIPTS / "download.py",
        repo_id=HUB["repo_id"],
        revision=HUB["revision"],
        endpoint=lambda wildcards: HUB.get("endpoint") or "",
        local_mirror=lambda wildcards: HUB.get("local_mirror") or "",
        download_dir=f"{DOWNLOAD_DIR}/{HUB['repo_id']}",
        reserve_bytes=ExtractLimits.from_config(config["unpack"]).reserve_bytes,
    resources:
        runtime=720,  # a 13.5 GB archive over a slow link
    log:
        log_path("download", "{archive}.log"),
    conda:
        CONDA_ENV
    shell:
        "{params.python} {params.script} --archive {wildcards.archive:q} --repo-id {params.repo_id:q}"
        " --revision {params.revision:q} --download-dir {params.download_dir:q}"
        " --endpoint={params.endpoint:q} --local-mirror={params.local_mirror:q}"
        " --reserve-bytes {params.reserve_bytes} --receipt {output.receipt:q} > {log:q} 2>&1"
