"""Test and demo tooling, in one place: nothing in the product imports it (only `sa2va_st.demo` does).

    world/         the synthetic world: every dataset in its real format, deterministic from a seed
    hub/           a local HTTP server that speaks the Hugging Face hub's download API, with fault hooks
    tiny.py        the tiny presets (InternVL, SAM2, open_clip), saved exactly like hub checkpoints
    media.py       the one video writer (exact pts, rotation, VFR) and broken videos for error paths
    sample_tree.py a prepared data tree laid out from a world's annotations, without download/unpack
    build.py       the world built as far as the manifests, in-process (tests, benchmarks)
    browser.py     headless Chromium screenshots of HTML pages, and pixel checks (tests only)

Command line (`python -m sa2va_st.testing --help`)::

    python -m sa2va_st.testing world --out DIR [--seed N]     write the synthetic world
    python -m sa2va_st.testing serve --root DIR [--port P]    serve a world as a local hub
    python -m sa2va_st.testing tiny --out DIR [--seed N]      write the tiny presets (vlm/, sam2/, clip/)
"""
