"""A local HTTP server that speaks the part of the Hugging Face Hub API the real client downloads with.

`huggingface_hub` (2.4.0) is pointed at it with `HF_ENDPOINT=<url>` or `endpoint=<url>`, so the demo and
the tests exercise the genuine client code (HEAD/GET `/resolve`, repo info, tree listing, paths-info)
against a plain folder instead of huggingface.co. Only what the client reads is implemented:

    ROOT/hub/datasets/{owner}/{name}/...   dataset repos
    ROOT/hub/models/{owner}/{name}/...     model repos
    ROOT/static/...                        plain files at /static/... (for plain-URL downloads)

Routes (path -> what the client calls it for):

    HEAD|GET /datasets/{repo}/resolve/{rev}/{path}   hf_hub_download (HEAD = metadata, GET = bytes, Range)
    HEAD|GET /{repo}/resolve/{rev}/{path}            same, model repos
    GET  /api/{datasets|models}/{repo}[/revision/{rev}]   dataset_info / model_info / repo_info,
                                                     snapshot_download (sha), resolve_revision
    GET  /api/{datasets|models}/{repo}/tree/{rev}[/{path}]  list_repo_tree / list_repo_files /
                                                     snapshot_download / verify_repo_checksums
    POST /api/{datasets|models}/{repo}/paths-info/{rev}    get_paths_info
    GET  /api/{datasets|models}/{repo}/refs          list_repo_refs
    HEAD|GET /static/{path}                          plain URL downloads

Each repo has exactly one commit: a real git commit object (fixed author and date) over the real git
tree of its files, so its sha is a deterministic function of the paths and contents. LFS-ness comes from
the repo's root `.gitattributes` (last matching `filter=lfs` line wins, as in git); LFS files are
described like the hub does (blob oid = sha1 of the pointer file, `lfs: {oid, size, pointerSize}`,
`ETag` / `X-Linked-Etag` = sha256). No Xet headers are ever sent, so the client never tries Xet even
when `hf_xet` is installed. There are no redirects: `/resolve` serves the bytes itself.

Test hooks, all state on the server object: `token` (401 without `Authorization: Bearer <token>`),
`throttle_bytes_per_s` (small paced chunks, so a client can be killed mid-download),
`corrupt_downloads` (flip bytes of the first n GETs while metadata stays true) and
`interrupt_downloads` (drop the connection of a file's first GET after n body bytes, the only
situation in which this client version sends `Range: bytes=N-`; see the tests).

CLI: `python -m sa2va_st.testing serve --root DIR [--host H] [--port P]` prints the URL, logs one
line per request to stderr, and serves until SIGINT/SIGTERM.

Modules, by concern:

    git.py       the repo folder as one git commit: object ids, LFS rules, file digests, snapshots
    responses.py what a request gets back: Response, HubError, byte ranges, file bodies
    api.py       the hub's JSON shapes and the routes (HubApp: a Request in, a Response out, no sockets)
    http.py      sockets: the HTTP/1.1 handler, paced and faulty bodies
    server.py    HubServer (lifecycle, token, fault hooks, request log) and the command line
"""

from .server import HubServer

__all__ = ["HubServer"]
