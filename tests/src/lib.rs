//! End-to-end tests of Linli live in `tests/`: a real `linli-server` on
//! loopback, real stores in temporary directories, plain HTTP from the
//! standard library so the client under test is never a mock of itself.
