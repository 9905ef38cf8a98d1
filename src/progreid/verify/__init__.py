"""Does it work on my cameras? Confirm a few matches on a local page and get R1/mAP estimates with
95% intervals, a blind paired comparison of models, and the clicks back as labels.

- ``session``: the queries (drawn at random, stratified over cameras) and each model's candidates;
- ``answers``: ``verify.jsonl``, one line per answer, appended at once (a crash loses nothing);
- ``estimate``: R1 and mAP@k per model from the answers, bootstrap intervals, paired differences;
- ``simulate``: answers from ground-truth identities (benchmarks and tests only);
- ``labels``: confirmed matches -> groups -> a ``path,pid`` CSV for ``adapt --labeled-csv``;
- ``server``: the page (Flask, the ``ui`` extra).
"""
