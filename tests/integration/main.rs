//! Integration tests: real Postgres, real HTTP.
