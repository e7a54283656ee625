//! The event-log record parser (`eventlog::read::parse_record`, what replay and `dcsd
//! verify-log` run on every line of a file a crash or a disk may have damaged): never panics,
//! and a record it accepts, written out again, parses to the same record.
#![no_main]

use dcsd::eventlog::read::parse_record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut line = data.to_vec();
    if let Ok(rec) = parse_record(&mut line) {
        let mut again = Vec::new();
        rec.write_json(&mut again);
        let back = parse_record(&mut again).expect("a record written back parses");
        assert_eq!(rec, back);
    }
});
