//! Query latency on a 10,000-entry knowledge base (half Chinese, half English), generated from
//! a support vocabulary plus product names (a large FAQ is large because it covers many
//! products: 4,000 names here). Prints build time and query latency percentiles; the target
//! is p99 < 1 ms. Run with `cargo bench -p kefu-kb`.
//!
//! Last measured on the quiet 2-core build machine: build 636 ms, p50 307 µs, p90 352 µs,
//! p99 408 µs, best-of-5 p99 256 µs, max 814 µs (before the exhaustive BM25 collector and the
//! hash-table character re-scoring: p50 701 µs, p99 1153 µs, max 3885 µs). Figures in the crate
//! README.

use std::time::Instant;

use kefu_kb::{Entry, KnowledgeBase, Lang, SearchOptions, Source, Synonyms, Tuning};

const EN_WORDS: &[&str] = &[
    "order",
    "refund",
    "shipping",
    "delivery",
    "invoice",
    "payment",
    "account",
    "password",
    "coupon",
    "return",
    "exchange",
    "size",
    "colour",
    "warranty",
    "courier",
    "parcel",
    "address",
    "phone",
    "card",
    "points",
    "member",
    "discount",
    "price",
    "stock",
    "gift",
    "box",
    "battery",
    "charger",
    "screen",
    "shoes",
    "jacket",
    "laptop",
    "headphones",
    "tracking",
    "damaged",
    "missing",
    "late",
    "cancel",
    "change",
    "update",
    "express",
    "free",
    "fee",
    "tax",
    "company",
    "receipt",
    "email",
    "login",
    "app",
    "store",
    "voucher",
    "balance",
    "wallet",
    "bank",
    "transfer",
    "limit",
    "install",
];
const EN_FRAMES: &[&str] = &[
    "how do i {} my {}",
    "why is my {} {}",
    "can i {} the {}",
    "where is the {} for {}",
    "what happens to {} after {}",
    "when will the {} {}",
    "is there a {} on {}",
];
const ZH_WORDS: &[&str] = &[
    "订单",
    "退款",
    "发货",
    "物流",
    "发票",
    "支付",
    "账号",
    "密码",
    "优惠券",
    "退货",
    "换货",
    "尺码",
    "颜色",
    "保修",
    "快递",
    "包裹",
    "地址",
    "手机",
    "银行卡",
    "积分",
    "会员",
    "折扣",
    "价格",
    "库存",
    "礼盒",
    "电池",
    "充电器",
    "屏幕",
    "鞋子",
    "外套",
    "电脑",
    "耳机",
    "签收",
    "破损",
    "丢件",
    "延迟",
    "取消",
    "修改",
    "加急",
    "包邮",
    "运费",
    "税号",
    "公司",
    "收据",
    "邮箱",
    "登录",
    "商城",
    "红包",
    "余额",
    "钱包",
    "转账",
    "限额",
    "安装",
    "预售",
    "定金",
    "尾款",
];
const ZH_FRAMES: &[&str] = &[
    "{}怎么{}",
    "为什么我的{}还没{}",
    "{}可以{}吗",
    "{}和{}有什么区别",
    "{}什么时候{}",
    "请问{}的{}在哪里",
];

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

const EN_BRANDS: &[&str] = &[
    "zorvia", "kelto", "marisk", "optiva", "brenno", "lumaq", "sentra", "vexel", "norrin", "calyx",
    "dravon", "pellia", "quorra", "tessen", "ulmara", "wynde", "yarrow", "fennik", "galdor",
    "hexon",
];
const ZH_BRANDS: &[&str] = &[
    "星河", "云杉", "青松", "白鹭", "海蓝", "金橙", "紫藤", "银杏", "朗月", "晨曦", "远山", "清泉",
    "暖阳", "竹影", "飞鸿", "锦绣", "若水", "长风", "墨香", "春雷",
];

/// One of 4,000 product names: a brand and a model ("zorvia x12", "星河 x12").
fn product(rng: &mut Rng, zh: bool) -> String {
    let brand = rng.pick(if zh { ZH_BRANDS } else { EN_BRANDS });
    let model = rng.next() % 200;
    format!(
        "{brand} {}{model}",
        ["x", "pro", "mini", "s"][(model % 4) as usize]
    )
}

fn sentence(rng: &mut Rng, zh: bool) -> String {
    let (frames, words) = if zh {
        (ZH_FRAMES, ZH_WORDS)
    } else {
        (EN_FRAMES, EN_WORDS)
    };
    let mut s = rng.pick(frames).to_owned();
    while s.contains("{}") {
        s = s.replacen("{}", rng.pick(words), 1);
    }
    // A third word and a product make entries less alike, as real FAQs are.
    let extra = rng.pick(words);
    let product = product(rng, zh);
    if zh {
        format!("{product}{s}{extra}")
    } else {
        format!("{s} {extra} for {product}")
    }
}

fn main() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let n = 10_000;
    let entries: Vec<Entry> = (0..n)
        .map(|i| {
            let zh = i % 2 == 0;
            Entry {
                id: format!("e{i}"),
                question: sentence(&mut rng, zh),
                phrasings: (0..2).map(|_| sentence(&mut rng, zh)).collect(),
                answer: (0..3)
                    .map(|_| sentence(&mut rng, zh))
                    .collect::<Vec<_>>()
                    .join(" "),
                tags: vec![
                    rng.pick(&["shipping", "returns", "payment", "account"])
                        .to_owned(),
                ],
                lang: if zh { Lang::Zh } else { Lang::En },
                source: Source {
                    file: "synthetic".into(),
                    line: i + 1,
                },
            }
        })
        .collect();
    let queries: Vec<String> = (0..4000).map(|i| sentence(&mut rng, i % 2 == 0)).collect();

    let t = Instant::now();
    let kb = match KnowledgeBase::from_entries(entries, Synonyms::default(), Tuning::default()) {
        Ok(kb) => kb,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let build = t.elapsed();
    let opts = SearchOptions::default();
    for q in queries.iter().take(200) {
        let _ = kb.search(q, &opts);
    }
    let mut lat: Vec<u128> = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            let hits = kb.search(q, &opts);
            std::hint::black_box(hits);
            t.elapsed().as_micros()
        })
        .collect();
    lat.sort_unstable();
    // The same queries, each timed 5 times keeping the fastest: on a shared machine the plain
    // percentiles include time the thread spent descheduled; this is the service time.
    let mut best: Vec<u128> = queries
        .iter()
        .map(|q| {
            (0..5)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(kb.search(q, &opts));
                    t.elapsed().as_micros()
                })
                .min()
                .unwrap_or(0)
        })
        .collect();
    best.sort_unstable();
    let bpct = |p: f64| best[((p * best.len() as f64).ceil() as usize).clamp(1, best.len()) - 1];
    let pct = |p: f64| lat[((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1];
    println!("kb search: {n} entries (zh/en), {} queries", lat.len());
    println!("  index build   {:>8.1} ms", build.as_secs_f64() * 1000.0);
    println!("  query p50     {:>8} µs", pct(0.50));
    println!("  query p90     {:>8} µs", pct(0.90));
    println!("  query p99     {:>8} µs   (target < 1000)", pct(0.99));
    println!("  best-of-5 p50 {:>8} µs", bpct(0.50));
    println!("  best-of-5 p99 {:>8} µs   (target < 1000)", bpct(0.99));
    println!("  query max     {:>8} µs", lat[lat.len() - 1]);
}
