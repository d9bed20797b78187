#!/usr/bin/env python3
"""Convert StackFAQ to the two JSONL files `kefu kb eval` reads.

StackFAQ ships as XML: each thread is a <qaPair> holding the original StackExchange
<question>, its top <answer>s and several <rephr> rephrasings of the information need.
Each thread becomes one knowledge-base entry (id = thread number, question, answers joined)
and each rephrasing one query whose expected_id is that thread; the `*` placeholders some
threads carry instead of a rephrasing are skipped (125 threads, 1,249 queries).

Usage:
    stackfaq_to_jsonl.py STACKFAQ.xml KB.jsonl QUERIES.jsonl

Standard library only. Tag names are matched case-insensitively and by suffix, so small
variations of the export (namespaces, <rephrasement>) still convert.
"""

import json
import sys
import xml.etree.ElementTree as ET


def local(tag):
    return tag.rsplit('}', 1)[-1].lower()


def text(el):
    return ' '.join(''.join(el.itertext()).split())


def main(src, kb_path, queries_path):
    root = ET.parse(src).getroot()
    pairs = [el for el in root.iter() if local(el.tag) in ('qapair', 'qa_pair', 'thread')]
    n_q = 0
    with open(kb_path, 'w', encoding='utf-8') as kb, open(queries_path, 'w', encoding='utf-8') as qs:
        for i, pair in enumerate(pairs, 1):
            tid = pair.get('id') or str(i)
            question, answers, rephr = '', [], []
            for child in pair:
                name = local(child.tag)
                if name == 'question':
                    question = text(child)
                elif name.startswith('answer'):
                    answers.append(text(child))
                elif name.startswith('rephr') or name.startswith('paraphrase'):
                    rephr.append(text(child))
            if not question:
                continue
            kb.write(json.dumps({'id': tid, 'question': question, 'answer': '\n\n'.join(answers)},
                                ensure_ascii=False) + '\n')
            for r in rephr:
                # Threads with fewer rephrasings fill the rest with a `*` placeholder: not a
                # query (nothing can match it), so it is left out rather than scored as a miss.
                if any(ch.isalnum() for ch in r):
                    qs.write(json.dumps({'query': r, 'expected_id': tid}, ensure_ascii=False) + '\n')
                    n_q += 1
    print(f'{len(pairs)} threads, {n_q} queries', file=sys.stderr)


if __name__ == '__main__':
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
