"""snnc.search: the skip-connection search of paper 1 (docs/search.md).

    from snnc.search import search
    res = search("model.onnx", data="fashion-mnist", out="run/")

Modules: space (matrices and their encoding), gp (exact GP, overlap kernel), acquisition (UCB,
beta schedule, kriging-believer batches), loop (BO / random search, journal, resume), journal,
executors (in-process, process pool, Ray), evaluate / prepare (weight sharing), plots, cli.
"""

from snnc.search.api import SearchResult, search
from snnc.search.loop import SearchConfig, run_search
from snnc.search.space import BlockChoice, BlockSpace, SearchSpace

__all__ = ["search", "SearchResult", "SearchConfig", "run_search", "SearchSpace", "BlockSpace",
           "BlockChoice"]
