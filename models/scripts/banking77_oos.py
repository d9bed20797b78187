#!/usr/bin/env python3
"""Make an out-of-scope evaluation from Banking77 for `kefu nlu eval`.

Banking77 has no out-of-scope examples, so some of its intents are turned into them. The 77
intents, sorted by name, are split by position: every 7th from the 4th (11 intents) becomes
`oos` in training and test ("seen" out-of-scope: the kind of off-topic question the designer
gave examples of); every 7th from the 7th (11 more) is left out of training and becomes `oos`
in a second test set ("unseen": new questions from the same banking domain, the hardest kind);
the other 55 stay in scope.

Usage:
    banking77_oos.py BANKING77_DIR OUT_DIR

Reads BANKING77_DIR/train.csv and test.csv (`text,category`) and writes OUT_DIR/train.jsonl,
OUT_DIR/test_seen.jsonl and OUT_DIR/test_unseen.jsonl (lines `{"text", "intent"}`).
Standard library only; the split is fixed, so figures are comparable between runs.
"""

import csv
import json
import os
import sys


def load(path):
    with open(path, encoding='utf-8', newline='') as f:
        rows = list(csv.reader(f))
    # The header is `text,category`; a text with an unquoted comma still ends in its category.
    return [(','.join(r[:-1]), r[-1]) for r in rows[1:] if len(r) >= 2]


def write(path, rows):
    with open(path, 'w', encoding='utf-8') as f:
        for text, intent in rows:
            f.write(json.dumps({'text': text, 'intent': intent}, ensure_ascii=False) + '\n')


def main(src, out):
    train = load(os.path.join(src, 'train.csv'))
    test = load(os.path.join(src, 'test.csv'))
    intents = sorted({i for _, i in train})
    seen = {x for k, x in enumerate(intents) if k % 7 == 3}
    unseen = {x for k, x in enumerate(intents) if k % 7 == 6}
    os.makedirs(out, exist_ok=True)
    relabel = lambda rows, as_oos: [(t, 'oos' if i in as_oos else i) for t, i in rows]
    write(os.path.join(out, 'train.jsonl'),
          relabel([r for r in train if r[1] not in unseen], seen))
    write(os.path.join(out, 'test_seen.jsonl'),
          relabel([r for r in test if r[1] not in unseen], seen))
    write(os.path.join(out, 'test_unseen.jsonl'),
          relabel([r for r in test if r[1] not in seen], unseen))
    print(f'{len(intents) - len(seen) - len(unseen)} in scope, {len(seen)} seen oos, '
          f'{len(unseen)} unseen oos', file=sys.stderr)


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
