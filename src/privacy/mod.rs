//! Privacy: IAB TCF v2.2 consent strings (http-api §10). Pure, no IO; per request.

pub mod tcf;
