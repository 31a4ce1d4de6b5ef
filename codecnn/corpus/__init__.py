"""The training corpus: every real source the dependencies ship (and the system's
wallpaper photographs), coded at the CTC QPs, with a fixed held-out set.

    from codecnn.corpus import build_corpus, corpus_sources
    build_corpus("corpus", codec="vvc", config="ai", jobs=2)
"""

from codecnn.corpus.build import CTC_QPS, build_corpus, corpus_dir, format_corpus_table
from codecnn.corpus.sources import (
    HELDOUT_CLIPS,
    HELDOUT_STILLS,
    WALLPAPER_PHOTOS,
    CorpusSource,
    corpus_sources,
)

__all__ = [
    "CTC_QPS", "HELDOUT_CLIPS", "HELDOUT_STILLS", "WALLPAPER_PHOTOS", "CorpusSource",
    "build_corpus", "corpus_dir", "corpus_sources", "format_corpus_table",
]
