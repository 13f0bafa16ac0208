"""The benchmark suite: what each part of Unmask costs in time, size and memory.

`python -m bench.run --out bench/results.json` (make bench) measures the models, training,
the server and the extension in Chromium, and writes bench/RESULTS.md beside the JSON.
`--smoke` runs everything tiny and fast; tests/bench/test_smoke.py runs it in CI. Tests never
time anything: figures live only in the results files.
"""
