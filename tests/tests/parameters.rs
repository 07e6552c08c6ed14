//! Parameters survive their own text: whatever value a host or a fuzzer
//! sets, the text the plugin shows for it reads back as a value that shows
//! the same text (clap-validator's fuzzer once found 0.4987679785509478 ->
//! "-0.00 ×" -> 0.5 -> "+0.00 ×").

use latent_trio_host::{Bundle, clap_bundle};

/// Plain values across each range, the ends, and values that round to zero.
fn values(min: f64, max: f64) -> Vec<f64> {
    let mut values: Vec<f64> = (0..=400)
        .map(|i| min + (max - min) * f64::from(i) / 400.0)
        .collect();
    // The fuzzer's value on a ±2 knob, and its neighbours on every range.
    for normalized in [0.4987679785509478, 0.4999, 0.5001, 0.123456789, 0.987654321] {
        values.push(min + (max - min) * normalized);
    }
    values.retain(|v| (min..=max).contains(v));
    values
}

#[test]
fn every_parameter_reads_back_the_value_its_text_shows() {
    let bundle = Bundle::load(&clap_bundle()).unwrap();
    let mut instance = bundle.instantiate().unwrap();
    let params = instance.params.clone();
    let mut checked = 0;
    for param in &params {
        for value in values(param.min, param.max) {
            let text = instance
                .value_text(param.id, value)
                .unwrap_or_else(|| panic!("{}: no text for {value}", param.name));
            let read = instance.text_value(param.id, &text).unwrap_or_else(|| {
                panic!(
                    "{}: {value} shows {text:?}, which does not read back",
                    param.name
                )
            });
            let again = instance.value_text(param.id, read).unwrap();
            assert_eq!(
                again, text,
                "{}: {value} -> {text:?} -> {read} -> {again:?}",
                param.name
            );
            checked += 1;
        }
    }
    assert!(params.len() > 40 && checked > 40 * 400);
    println!(
        "{checked} values of {} parameters round-trip through their text",
        params.len()
    );
}
