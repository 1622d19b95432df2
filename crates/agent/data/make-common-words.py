"""Writes common-words.tsv: everyday English and Chinese words with how common they are in
general text, so that retrieval can tell a word every text uses ("day", "work", "怎么") from
one that names a topic ("refund", "docker", "钉钉"), which a small knowledge base cannot.

Run with the `wordfreq` Python package installed (pip install wordfreq==3.1.1):
    python3 make-common-words.py > common-words.tsv
"""
import math
import re

import wordfreq

# Words rarer than this (Zipf scale: log10 of occurrences per billion words) are left out:
# retrieval treats a word missing from the table as specific.
MIN_ZIPF = 3.5
LATIN = re.compile(r"^[a-z][a-z']*$")
HAN = re.compile(r"^[\u4e00-\u9fff]+$")

print(f"# wordfreq {wordfreq.__version__ if hasattr(wordfreq, '__version__') else '3.1.1'} "
      f"frequency lists (data CC-BY-SA 4.0, from wordfreq's sources); Zipf x 10, >= {MIN_ZIPF}")
for lang, shape in (("en", LATIN), ("zh", HAN)):
    for word, freq in sorted(wordfreq.get_frequency_dict(lang).items(), key=lambda kv: -kv[1]):
        zipf = math.log10(freq * 1e9)
        if zipf < MIN_ZIPF:
            break
        if shape.match(word):
            print(f"{word}\t{round(zipf * 10)}")
