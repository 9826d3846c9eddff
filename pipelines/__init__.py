"""Wiring: the dataflow and everything that runs it.

Layers, each importing only those below it (``tests/test_layers.py`` checks)::

    cli/                      commands, display, tail
    evaluation/  bench/       scoring, evaluate, train; benchmarks;
    report/                   the replay report (HTML)
    run/                      replay, live, cluster
    flow.py                   the dataflow, top to bottom as in DESIGN.md
    steps/  simulate/         the dataflow's steps; the agent-based market
    config.py  model_file.py  every config table; the pre-trained classifier file
"""
