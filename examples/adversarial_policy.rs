//! Writes one of the adversarial lint policies of `benches/adversarial` to standard output, for timing
//! `crrules lint` as a whole process: `cargo run --release --example adversarial_policy -- dev 10000`.

#[path = "../benches/adversarial/mod.rs"]
mod adversarial;

fn main() {
    let mut args = std::env::args().skip(1);
    let shape = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let Some((_, generate)) = adversarial::SHAPES.iter().find(|(name, _)| *name == shape) else {
        let names: Vec<&str> = adversarial::SHAPES.iter().map(|(name, _)| *name).collect();
        eprintln!("usage: adversarial_policy SHAPE [N], SHAPE one of {}", names.join(", "));
        std::process::exit(2);
    };
    print!("{}", generate(n));
}
