//! Loading: every format, defaults, and problems reported at `file:line`.

use std::path::Path;

use kefu_kb::{KbError, KnowledgeBase, Lang};

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn problems(err: KbError) -> Vec<String> {
    match err {
        KbError::Invalid { problems } => problems.iter().map(ToString::to_string).collect(),
        other => panic!("expected content problems, got {other}"),
    }
}

#[test]
fn every_format_loads_with_sources_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "faq.zh.yaml",
        "tags: [shipping]\nentries:\n  - id: ship\n    question: 什么时候发货\n    phrasings: [啥时候发货]\n    answer: 48 小时内\n    tags: [fast]\n",
    );
    write(
        dir.path(),
        "more/pay.csv",
        "id,question,phrasings,answer,tags\npay,How can I pay?,payment options|can I use alipay,Alipay or card,payment|checkout\n",
    );
    write(
        dir.path(),
        "returns.md",
        "# Returns\n\nIntro text is ignored.\n\n## How do I return an item?\nid: ret\ntags: returns\nalso: send it back\nalso: return process\n\nOpen **My orders**.\n\nThen tap Return.\n\n## 退货运费谁出？\nid: ret-fee\n\n质量问题我们承担。\n",
    );
    write(
        dir.path(),
        "README.md",
        "## Not an entry\nid: readme\n\ntext\n",
    );
    write(dir.path(), ".swap.yaml", "broken: [");
    let kb = KnowledgeBase::open(dir.path()).unwrap();
    assert_eq!(kb.len(), 4);

    let ship = kb.get("ship").unwrap();
    assert_eq!(ship.lang, Lang::Zh);
    assert_eq!(ship.tags, vec!["shipping", "fast"]);
    assert_eq!(ship.source.file, Path::new("faq.zh.yaml"));
    assert_eq!(ship.source.line, 3);
    assert_eq!(ship.citation(), "faq.zh.yaml#ship");

    let pay = kb.get("pay").unwrap();
    assert_eq!(pay.phrasings, vec!["payment options", "can I use alipay"]);
    assert_eq!(pay.tags, vec!["payment", "checkout"]);
    assert_eq!(pay.lang, Lang::En);
    assert_eq!(pay.source.file, Path::new("more/pay.csv"));
    assert_eq!(pay.source.line, 2);

    let ret = kb.get("ret").unwrap();
    assert_eq!(ret.phrasings, vec!["send it back", "return process"]);
    assert_eq!(ret.answer, "Open **My orders**.\n\nThen tap Return.");
    assert_eq!(ret.source.line, 5);
    let fee = kb.get("ret-fee").unwrap();
    assert_eq!(fee.lang, Lang::Zh, "detected from the question");
    assert_eq!(fee.answer, "质量问题我们承担。");
}

#[test]
fn jsonl_accepts_numbers_and_alternative_field_names() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "kb.jsonl",
        "{\"id\": 7, \"title\": \"How to undo send?\", \"body\": \"Settings\"}\n\n{\"question\": \"no id\"}\n",
    );
    let kb = KnowledgeBase::open(dir.path().join("kb.jsonl")).unwrap();
    assert_eq!(kb.get("7").unwrap().question, "How to undo send?");
    assert_eq!(
        kb.get("3").unwrap().answer,
        "",
        "the line number stands in for a missing id"
    );
}

#[test]
fn problems_are_all_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        "entries:\n  - id: one\n    question: Q1\n    answer: A1\n  - id: two\n    questoin: typo\n    answer: A2\n  - id: one\n    question: Q3\n    answer: A3\n",
    );
    write(
        dir.path(),
        "b.yaml",
        "entries:\n  - id: x\n    question: [unclosed\n",
    );
    write(
        dir.path(),
        "c.csv",
        "id,question,answer,colour\nz,Q,A,red\n",
    );
    write(
        dir.path(),
        "d.jsonl",
        "{\"id\": 1, \"question\": \"ok\"}\nnot json\n",
    );
    write(
        dir.path(),
        "e.md",
        "## A question without an id\n\nAnswer.\n",
    );
    write(dir.path(), "synonyms.txt", "lonely\n");
    let p = problems(KnowledgeBase::open(dir.path()).unwrap_err());
    let has = |needle: &str| p.iter().any(|s| s.contains(needle));
    assert!(has("a.yaml:6: unknown key `questoin`"), "{p:#?}");
    assert!(has("a.yaml:5: the entry has no `question`"), "{p:#?}");
    assert!(
        has("a.yaml:8: duplicate id `one` (first defined at a.yaml:2)"),
        "{p:#?}"
    );
    assert!(has("b.yaml:"), "{p:#?}");
    assert!(has("c.csv:1: unknown column `colour`"), "{p:#?}");
    assert!(has("d.jsonl:2: JSON"), "{p:#?}");
    assert!(has("e.md:1: the entry has no `id`"), "{p:#?}");
    assert!(has("synonyms.txt:1:"), "{p:#?}");
}

#[test]
fn a_missing_directory_is_an_io_error() {
    let err = KnowledgeBase::open("no/such/kb/dir").unwrap_err();
    assert!(matches!(err, KbError::Io { .. }), "{err}");
}
