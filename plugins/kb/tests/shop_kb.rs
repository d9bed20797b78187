//! The shop bot's shipped knowledge base: it loads, and colloquial questions hit the right entry.

use std::path::Path;

use kefu_kb::{KbSkill, KnowledgeBase, Lang, SearchOptions};

fn shop_kb() -> KnowledgeBase {
    KnowledgeBase::open(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dialog-flows/bots/shop/kb"),
    )
    .unwrap()
}

#[test]
fn it_has_real_content_in_both_languages() {
    let kb = shop_kb();
    let zh = kb.entries().iter().filter(|e| e.lang == Lang::Zh).count();
    let en = kb.entries().iter().filter(|e| e.lang == Lang::En).count();
    assert!(zh >= 40 && en >= 40, "zh {zh}, en {en}");
    for e in kb.entries() {
        assert!(
            !e.answer.is_empty() && !e.phrasings.is_empty() && !e.tags.is_empty(),
            "{}",
            e.id
        );
    }
}

#[test]
fn colloquial_questions_hit_the_right_entry() {
    let kb = shop_kb();
    let cases = [
        ("啥时候发货", "ship-when"),
        ("啥时候发货啊", "ship-when"),
        ("退货运费谁出", "return-shipping-fee"),
        ("退货的邮费我自己出吗", "return-shipping-fee"),
        ("能开发票不", "invoice-how"),
        ("发票抬头能写公司吗", "invoice-company"),
        ("可以用花呗吗", "pay-installment"),
        ("我的快递到哪了", "ship-track"),
        ("钱啥时候退给我", "return-refund-time"),
        ("东西坏了咋办", "return-quality"),
        ("密码忘了登不上", "account-password"),
        ("包邮不", "ship-fee"),
        ("can I get a fapiao", "en-invoice-how"),
        ("when will u ship my stuff", "en-ship-when"),
        ("who pays return shipping", "en-return-shipping-fee"),
        ("do u take alipay", "en-pay-methods"),
        ("wheres my parcel", "en-ship-track"),
        ("refund still not here", "en-return-refund-time"),
        ("item arrived broken", "en-return-damaged"),
        ("forgot my password", "en-account-password"),
        ("is shipping free", "en-ship-fee"),
    ];
    let mut misses = Vec::new();
    for (q, id) in cases {
        let hits = kb.search(q, &SearchOptions::default());
        let top = hits.first().map(|h| (h.entry.id.clone(), h.confidence));
        match &top {
            Some((got, conf)) if got == id && *conf >= KbSkill::DEFAULT_THRESHOLD => {}
            _ => misses.push(format!("{q} -> {top:?}, expected {id}")),
        }
    }
    assert!(misses.is_empty(), "{misses:#?}");
}

#[test]
fn language_filter_answers_in_the_conversation_language() {
    let kb = shop_kb();
    let en = SearchOptions {
        lang: Some(Lang::En),
        ..SearchOptions::default()
    };
    let hits = kb.search("发票", &en);
    assert!(hits.iter().all(|h| h.entry.lang == Lang::En));
    assert_eq!(
        hits[0].entry.id, "en-invoice-how",
        "synonyms cross languages: {hits:?}"
    );
}
