//! Privacy: IAB TCF v2.2 consent strings (docs/http-api.md §10). Pure, no IO; per request.

pub mod tcf;
