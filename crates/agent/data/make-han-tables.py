"""Writes han-chars.tsv: for each common Chinese character (GB2312 and the traditional
forms that fold onto them), its simplified form and its Mandarin reading without tone, so
that retrieval can match a question typed in traditional characters, or with a homophone
typo from a pinyin input method (编绎 for 编译), against simplified pages.

Run with `pypinyin` (0.55) and `opencc-python-reimplemented` (0.1.7) installed:
    python3 make-han-tables.py > han-chars.tsv
"""
import os

import opencc
from pypinyin import Style, pinyin

# One line per traditional character in OpenCC's table: "繁<TAB>简 [alternatives]".
ts_path = os.path.join(os.path.dirname(opencc.__file__), "dictionary", "TSCharacters.txt")
to_simplified = {}
with open(ts_path, encoding="utf-8") as f:
    for line in f:
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 2 and len(parts[0]) == 1:
            to_simplified[parts[0]] = parts[1].split(" ")[0]


def gb2312(c):
    try:
        c.encode("gb2312")
        return True
    except UnicodeEncodeError:
        return False


chars = {chr(cp) for cp in range(0x4E00, 0xA000) if gb2312(chr(cp))}
chars |= {t for t, s in to_simplified.items() if s in chars}

print("# char<TAB>simplified form (- when the same)<TAB>reading without tone; "
      "from pypinyin 0.55 and OpenCC's TSCharacters")
for c in sorted(chars):
    simple = to_simplified.get(c, c)
    reading = pinyin(simple, style=Style.NORMAL, heteronym=False)[0][0]
    if not reading.isascii() or not reading.isalpha():
        continue
    print(f"{c}\t{'-' if simple == c else simple}\t{reading}")
