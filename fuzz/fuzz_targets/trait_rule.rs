//! Trait rule parser: never panics; an error points inside the rule; a rule that parses also
//! loads through the taxonomy loader (index build, regexes, automata) and evaluates, with the
//! compiled index agreeing with the naive evaluator on a request made of the rule's own keys
//! and values.
#![no_main]

use dcsd::catalog::Catalog;
use dcsd::json::escape_into as json_escape;
use dcsd::engine::rule::{parse, Op};
use dcsd::engine::{EngineScratch, RealizeCtx};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|rule: &str| {
    let ast = match parse(rule) {
        Ok(ast) => ast,
        Err(e) => {
            assert!(e.pos <= rule.len(), "{e}");
            return;
        }
    };
    let mut esc = Vec::new();
    json_escape(rule.as_bytes(), &mut esc);
    let doc = format!(
        r#"{{"customers":[{{"id":1,"hosts":["a"]}}],"data_sources":[{{"dpid":1,"owner":1}}],
        "traits":[{{"sid":1,"dpid":1,"rule":"{}"}}]}}"#,
        String::from_utf8_lossy(&esc)
    );
    let Ok(t) = Catalog::from_json(doc.as_bytes()) else { return }; // e.g. a bad regex
    let mut cmps = Vec::new();
    ast.cmps(&mut cmps);
    if cmps.iter().any(|c| c.op == Op::Regex) {
        return; // the naive evaluator needs the engine's regexes
    }
    let signals: Vec<(&[u8], &[u8])> = cmps.iter().map(|c| (&*c.key, c.value.text())).collect();
    let mut out = Vec::new();
    let ctx = RealizeCtx { customer: 1, ..RealizeCtx::default() };
    t.engine.realize(&mut EngineScratch::default(), signals.iter().copied(), &ctx, &mut out);
    assert_eq!(out == [1], ast.eval(&signals, &|_, _| false), "{rule:?}");
});
